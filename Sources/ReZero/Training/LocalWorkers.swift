/// How one rank uses its threads: data-parallel workers, each with single-threaded BLAS, or —
/// when the micro-batch has a single sequence — one worker whose BLAS uses all the threads
/// (`--debug` asks for one thread, so it runs one worker on one thread).
public struct ThreadLayout: Sendable, Equatable, CustomStringConvertible {
    /// Workers sharing the rank's micro-batch, each with its own slice, activations and gradients.
    public let workers: Int
    /// BLAS threads of each worker (more than one only when there is a single worker).
    public let blasThreads: Int

    /// One worker per thread while the micro-batch can feed them all (small products run faster
    /// side by side on single-threaded BLAS than split across threads inside BLAS); otherwise
    /// as many workers as sequences.
    public static func choose(threads: Int, microBatch: Int) -> ThreadLayout {
        let workers = Swift.max(1, Swift.min(threads, microBatch))
        return ThreadLayout(workers: workers, blasThreads: workers == 1 ? Swift.max(1, threads) : 1)
    }

    public var description: String { "\(workers) worker(s) × \(blasThreads) BLAS thread(s)" }
}

/// Data parallelism inside the process. The rank's micro-batch is cut into contiguous slices, one
/// per worker; each worker loads its sequences and runs forward and backward on them against the
/// shared parameters, into its own activations and gradient buffer; the buffers are then summed
/// into the model's gradients in worker order, so the result does not depend on thread timing.
final class LocalWorkers: TeamJob {
    let layout: ThreadLayout
    /// The workers' threads (nil for one worker).
    let team: ThreadTeam?
    /// Each worker's first sequence within the micro-batch, and its activations.
    let offsets: [Int]
    let workspaces: [Workspace<Float>]
    private let model: Model<Float>
    private let corpus: Corpus
    private let seed: UInt64, dropout: Double
    /// Worker 0 accumulates into the model's own buffer, the others into their own.
    private let gradients: [UnsafeMutablePointer<Float>]
    /// Per worker: the summed token losses of the step, and the error it met — written by the
    /// workers' threads, so raw memory rather than arrays.
    private let losses: UnsafeMutablePointer<Double>
    private let failures: UnsafeMutablePointer<NonFiniteValue?>
    /// Worker 0's forward seconds in this step (it runs on the caller's thread).
    private(set) var forwardSeconds = 0.0

    /// What the next `team.run` does, and its arguments: a job object that lives as long as the
    /// workers costs no allocation per run, where a closure would.
    private enum Phase { case forwardBackward, reduce }
    private var phase = Phase.forwardBackward
    private var step = 0, first = 0, lossScale: Float = 0

    init(model: Model<Float>, corpus: Corpus, seed: UInt64, dropout: Double, microBatch: Int, layout: ThreadLayout) {
        self.layout = layout
        self.model = model
        self.corpus = corpus
        self.seed = seed
        self.dropout = dropout
        team = layout.workers > 1 ? ThreadTeam(size: layout.workers) : nil
        let sizes = (0..<layout.workers).map { microBatch / layout.workers + ($0 < microBatch % layout.workers ? 1 : 0) }
        offsets = sizes.indices.map { sizes[..<$0].reduce(0, +) }
        workspaces = sizes.map { Workspace<Float>(config: model.config, batch: $0, sequence: model.config.seqLen) }
        gradients = [model.gradients] + (1..<layout.workers).map { _ in TensorMemory.allocate(Float.self, count: model.parameterCount) }
        losses = .allocate(capacity: layout.workers)
        losses.initialize(repeating: 0, count: layout.workers)
        failures = .allocate(capacity: layout.workers)
        failures.initialize(repeating: nil, count: layout.workers)
    }

    deinit {
        for buffer in gradients.dropFirst() { TensorMemory.deallocate(buffer) }
        losses.deallocate()
        failures.deinitialize(count: layout.workers)
        failures.deallocate()
    }

    /// A worker's activations and, beyond the first worker, its gradient buffer.
    var bytesPerWorker: Int {
        (workspaces.map(\.bytes).max() ?? 0) + (layout.workers > 1 ? model.parameterCount * MemoryLayout<Float>.stride : 0)
    }

    /// What attention keeps of a worker's activations: its log-sum-exps and one block's scores.
    var attentionBytesPerWorker: Int {
        workspaces.map { $0.bytes(of: [.logSumExp, .attentionScratch]) }.max() ?? 0
    }

    func startStep() {
        for g in gradients { g.update(repeating: 0, count: model.parameterCount) }
        losses.update(repeating: 0, count: layout.workers)
        forwardSeconds = 0
    }

    /// Forward and backward of the micro-batch that starts at sequence `first` of step `step`'s
    /// global batch, adding to the step's losses and gradients.
    func forwardBackward(step: Int, first: Int, lossScale: Float) throws(NonFiniteValue) {
        (self.step, self.first, self.lossScale) = (step, first, lossScale)
        guard layout.workers > 1, let team else {
            var clock = Clock()
            load(0)
            losses[0] += try model.forward(workspaces[0]) * Double(workspaces[0].rows)
            forwardSeconds += clock.lap()
            try model.backward(workspaces[0], lossScale: lossScale)
            return
        }
        let saved = BLAS.threads
        BLAS.threads = 1
        phase = .forwardBackward
        team.run(self)
        BLAS.threads = saved
        for k in 0..<layout.workers {
            if let failure = failures[k] { throw failure }
        }
    }

    /// The step's summed token losses over all workers, in worker order.
    var summedLoss: Double { (0..<layout.workers).reduce(0) { $0 + losses[$1] } }

    /// Adds every worker's gradients into worker 0's (the model's), element by element in worker
    /// order, with the parameter range shared out among the team.
    func reduceGradients() {
        guard layout.workers > 1, let team else { return }
        phase = .reduce
        team.run(self)
    }

    func work(member k: Int) {
        switch phase {
        case .forwardBackward:
            var clock = Clock()
            do throws(NonFiniteValue) {
                load(k)
                let ws = workspaces[k]
                losses[k] += try model.forward(ws) * Double(ws.rows)
                if k == 0 { forwardSeconds += clock.lap() }
                try model.backward(ws, lossScale: lossScale, into: gradients[k])
            } catch {
                failures[k] = error
            }
        case .reduce:
            let total = gradients[0], chunk = (model.parameterCount + layout.workers - 1) / layout.workers
            let range = (k * chunk)..<Swift.min(model.parameterCount, (k + 1) * chunk)
            for source in gradients.dropFirst() {
                for i in range { total[i] += source[i] }
            }
        }
    }

    /// Worker k's sequences of the micro-batch, and the key of their dropout masks.
    private func load(_ k: Int) {
        let ws = workspaces[k]
        corpus.fillTrainingBatch(tokens: ws.tokens, targets: ws.targets, seed: seed, step: step,
                                 first: first + offsets[k], count: ws.batch, sequence: ws.sequence)
        ws.dropout = dropout > 0 ? DropoutKey(rate: dropout, seed: seed, step: step, firstSequence: first + offsets[k]) : nil
    }
}
