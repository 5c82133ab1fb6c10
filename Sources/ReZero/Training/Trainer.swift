/// The data-parallel training step. Every rank holds a replica; the global batch of step s is
/// drawn from (seed, s) and split into contiguous shares; each rank runs forward and backward on
/// its share, the gradients (α included) are summed with one all-reduce over the flat buffer,
/// clipped by their global norm, and every rank takes the same optimizer step.
public final class Trainer {
    public let config: TrainingConfig
    public let corpus: Corpus
    public let collective: Collective
    public let model: Model<Float>
    public let optimizer: Optimizer
    public internal(set) var state = TrainingState()
    /// Sequences per forward pass on this rank: the global batch / (ranks × accumulation steps).
    let microBatch: Int
    /// The rank's threads: data-parallel workers sharing each micro-batch.
    let workers: LocalWorkers
    public var threadLayout: ThreadLayout { workers.layout }
    private let overlappedSum: OverlappedGradientSum
    /// [loss, stop requested, non-finite value found by --debug], summed over ranks with the
    /// step; allocated once so that the step allocates nothing.
    private var stepScalars = [0.0, 0.0, 0.0]
    /// Wall time of the last step's phases, for `bench`.
    public private(set) var lastTiming = StepTiming()

    public struct StepTiming: Sendable {
        public var forward = 0.0, backward = 0.0, allReduce = 0.0, optimizer = 0.0
    }

    public struct StepResult: Sendable {
        /// Mean loss of the global batch (nats per byte).
        public var loss: Double
        /// Global L2 norm of the gradient before clipping.
        public var gradientNorm: Double
        /// Some rank asked to stop after this step.
        public var stopRequested: Bool
        /// False when the loss or the gradient norm was not finite, or `--debug` found a non-finite
        /// value on some rank: the parameters were left as they were, and training must stop as diverged.
        public var applied: Bool
        /// What `--debug` found on this rank (other ranks print their own finding).
        public var nonFinite: NonFiniteValue?
    }

    /// - Parameters:
    ///   - threads: the threads this rank may use (see `ThreadLayout`).
    ///   - resume: a checkpoint to continue from; its architecture must equal `config.model`.
    ///   - debug: check every activation and gradient for NaN/Inf, on one thread.
    public init(config: TrainingConfig, corpus: Corpus, collective: Collective, threads: Int = 1,
                resume: Checkpoint.Loaded? = nil, debug: Bool = false) throws {
        try config.validate(worldSize: collective.size)
        try corpus.validate(sequence: config.model.seqLen)
        self.config = config
        self.corpus = corpus
        self.collective = collective
        microBatch = config.batchSize / (collective.size * config.accumSteps)
        let layout = ThreadLayout.choose(threads: debug ? 1 : threads, microBatch: microBatch)
        try MemoryBudget.require(config.model, batch: microBatch, sequence: config.model.seqLen, training: true,
                                 workers: layout.workers)
        model = Model<Float>(config: config.model, seed: config.seed)
        optimizer = Optimizer(config: config.optimizer, layout: model.layout)
        BLAS.threads = layout.blasThreads
        workers = LocalWorkers(model: model, corpus: corpus, seed: config.seed, dropout: config.dropout,
                               microBatch: microBatch, layout: layout)
        overlappedSum = OverlappedGradientSum(collective, gradients: model.gradients, layers: config.model.layers)
        if debug { model.debugStep = 0 }
        try collective.requireAgreement(on: """
            {"build":"\(ReZeroBuild.identifier)","parameters":\(model.parameterCount),"config":\(config.json())}
            """)
        if let resume {
            try resume.restore(parameters: model.parameters, layout: model.layout, optimizer: optimizer)
            state = resume.state
        }
        try adoptRootReplica()
    }

    /// Rank 0's state, parameters and moments become every rank's, whatever each rank computed
    /// or loaded (with run directories on node-local disks, only rank 0 may have found a checkpoint).
    private func adoptRootReplica() throws {
        var updates = optimizer.updates
        try collective.broadcast(&updates, bytes: MemoryLayout<Int>.size)
        optimizer.updates = updates
        let rootState = try collective.broadcast(Array(JSONCoding.string(state).utf8))
        state = try JSONCoding.decode(TrainingState.self, from: String(decoding: rootState, as: UTF8.self))
        state.worldSize = collective.size
        let bytes = model.parameterCount * MemoryLayout<Float>.stride
        try collective.broadcast(model.parameters, bytes: bytes)
        try collective.broadcast(optimizer.firstMoment, bytes: bytes)
        try collective.broadcast(optimizer.secondMoment, bytes: bytes)
    }

    /// Optimizer step state.step + 1. `stopRequested` is this rank's wish to stop; the result says
    /// whether any rank had it.
    @discardableResult
    public func step(stopRequested: Bool = false) throws -> StepResult {
        let s = state.step + 1
        if model.debugStep != nil { model.debugStep = s }
        collective.watchdog?.phase = "step"
        collective.watchdog?.step = s
        var timing = StepTiming()
        var clock = Clock()
        workers.startStep()
        let lossScale = 1 / Float(microBatch * config.model.seqLen * config.accumSteps * collective.size)
        // Debug mode checks the gradients before they are reduced, and workers sum theirs after
        // backward: neither overlaps.
        let overlap = config.overlapCommunication && collective.size > 1 && model.debugStep == nil
            && workers.layout.workers == 1
        var nonFinite: NonFiniteValue?
        do throws(NonFiniteValue) {
            for micro in 0..<config.accumSteps {
                // Each part's gradient is final once the last micro-batch's backward has passed it.
                model.backwardObserver = overlap && micro == config.accumSteps - 1 ? overlappedSum : nil
                let first = collective.rank * (config.batchSize / collective.size) + micro * microBatch
                try workers.forwardBackward(step: s, first: first, lossScale: lossScale)
            }
            workers.reduceGradients()
            try model.checkGradients()
        } catch {
            // --debug found a NaN/Inf on this rank; the others learn of it with the step's sums.
            nonFinite = error
        }
        // Forward as worker 0 measured it; backward the rest, waiting for the others and the sum.
        timing.forward = workers.forwardSeconds
        timing.backward = clock.lap() - timing.forward
        stepScalars[0] = workers.summedLoss / Double(microBatch * config.model.seqLen)
        stepScalars[1] = stopRequested ? 1 : 0
        stepScalars[2] = nonFinite == nil ? 0 : 1
        if overlap {
            try overlappedSum.finish()
        } else {
            try collective.allReduceSum(model.gradients, count: model.parameterCount)
        }
        try collective.allReduce(&stepScalars, .sum)
        timing.allReduce = clock.lap()
        let loss = stepScalars[0] / Double(config.accumSteps * collective.size)
        let norm = globalNorm(model.gradients, count: model.parameterCount)
        // Every rank holds the same reduced loss, norm and finding, so all of them skip together.
        let applied = loss.isFinite && norm.isFinite && stepScalars[2] == 0
        if applied {
            if config.clip > 0 && norm > config.clip {
                let scale = Float(config.clip / norm)
                for i in 0..<model.parameterCount { model.gradients[i] *= scale }
            }
            optimizer.step(parameters: model.parameters, gradients: model.gradients,
                           learningRate: config.schedulePlan.rate(at: s))
            state.step = s
            state.tokensSeen += config.batchSize * config.model.seqLen
        }
        timing.optimizer = clock.lap()
        lastTiming = timing
        return StepResult(loss: loss, gradientNorm: norm, stopRequested: stepScalars[1] > 0, applied: applied,
                          nonFinite: nonFinite)
    }

    /// The first non-finite value among the parameters and moments (see `Checkpoint.firstNonFinite`);
    /// the same on every rank, whose replicas are identical.
    func firstNonFinite() -> String? {
        Checkpoint.firstNonFinite(layout: model.layout, parameters: model.parameters, optimizer: optimizer)
    }
}

/// Starts each part's all-reduce as backward finishes it and keeps the transfers moving between
/// the products of backward.
private final class OverlappedGradientSum: BackwardObserver {
    private let sum: Collective.OverlappedSum
    private let gradients: UnsafeMutablePointer<Float>

    init(_ collective: Collective, gradients: UnsafeMutablePointer<Float>, layers: Int) {
        // The head, two parts per layer, the embeddings.
        sum = Collective.OverlappedSum(collective, capacity: 2 * layers + 2)
        self.gradients = gradients
    }

    func gradientsReady(_ range: Range<Int>) {
        sum.start(gradients + range.lowerBound, count: range.count)
        sum.progress()
    }

    func poll() { sum.progress() }

    func finish() throws { try sum.finish() }
}
