import Foundation
import RealModule

/// Set from SIGTERM / SIGINT; read once per step and agreed on by all ranks.
nonisolated(unsafe) private var stopSignalled: sig_atomic_t = 0

public struct TrainingSummary: Codable, Sendable {
    public enum Status: String, Codable, Sendable { case completed, stopped, diverged }
    public var status: Status
    public var step: Int
    /// nil when the run had no step left to take.
    public var finalLoss: Double?
    public var validBitsPerByte: Double?
    public var bestValidBitsPerByte: Double?
    public var entropyRate: Double?
    public var checkpoint: String?
    public var message: String?
}

/// The data-parallel training loop. Every rank holds a replica; the global batch of step s is
/// drawn from (seed, s) and split into contiguous shares; gradients are summed with one
/// all-reduce over the flat buffer (α included), and every rank takes the same optimizer step.
public final class Trainer {
    public let config: TrainingConfig
    public let corpus: Corpus
    public let collective: Collective
    public let model: Model<Float>
    public let optimizer: Optimizer
    public let runDirectory: String?
    public private(set) var state = TrainingState()
    let workspace: Workspace<Float>
    let evaluator: Evaluator
    let log: (String) -> Void
    let microBatch: Int
    private let overlappedSum: Collective.OverlappedSum
    private let reduceWhenReady: (Range<Int>) -> Void
    /// Allocated once: the step allocates nothing.
    private var stepScalars = [0.0, 0.0]
    /// The step this process resumed from (metrics.jsonl keeps the lines up to it).
    private var resumedAt: Int?
    private var metrics: FileHandle?
    /// Validation bits per byte by step, in the order measured.
    public private(set) var validationHistory: [(step: Int, bitsPerByte: Double)] = []
    /// Timing of the last step, for `bench`.
    public private(set) var lastTiming = StepTiming()

    public struct StepTiming: Sendable {
        public var forward = 0.0, backward = 0.0, allReduce = 0.0, optimizer = 0.0
        public var total: Double { forward + backward + allReduce + optimizer }
    }

    /// - Parameters:
    ///   - resume: a checkpoint to continue from; its architecture must equal `config.model`.
    ///   - debug: check every activation and gradient for NaN/Inf.
    public init(config: TrainingConfig, corpus: Corpus, collective: Collective, runDirectory: String?,
                resume: Checkpoint.Loaded? = nil, debug: Bool = false, log: @escaping (String) -> Void) throws {
        try config.validate(worldSize: collective.size)
        try corpus.validate(sequence: config.model.seqLen)
        self.config = config
        self.corpus = corpus
        self.collective = collective
        self.runDirectory = runDirectory
        self.log = collective.isRoot ? log : { _ in }
        microBatch = config.batchSize / (collective.size * config.accumSteps)
        model = Model<Float>(config: config.model, seed: config.seed)
        optimizer = Optimizer(config: config.optimizer, layout: model.layout)
        workspace = Workspace<Float>(config: config.model, batch: microBatch, sequence: config.model.seqLen,
                                     attentionWorkers: BLAS.threads)
        evaluator = Evaluator(model: model, corpus: corpus, collective: collective, batch: microBatch)
        if debug { model.debugStep = 0 }
        overlappedSum = Collective.OverlappedSum(collective, capacity: 2 * config.model.layers + 2)
        reduceWhenReady = { [unowned model, overlappedSum] range in
            overlappedSum.start(model.gradients + range.lowerBound, count: range.count)
            overlappedSum.progress()
        }
        try agreeAcrossRanks()
        if let resume {
            try resume.restore(parameters: model.parameters, layout: model.layout, optimizer: optimizer)
            state = resume.state
        }
        // Rank 0's state is the job's state, whatever each rank computed or loaded (with run
        // directories on node-local disks, only rank 0 may have found a checkpoint).
        var position = [Double(state.step), Double(state.tokensSeen), state.bestValidBitsPerByte ?? -1,
                        Double(optimizer.updates)]
        try collective.broadcast(&position, bytes: position.count * 8)
        state.step = Int(position[0])
        state.tokensSeen = Int(position[1])
        state.bestValidBitsPerByte = position[2] < 0 ? nil : position[2]
        optimizer.updates = Int(position[3])
        state.worldSize = collective.size
        try collective.broadcast(model.parameters, bytes: model.parameterCount * 4)
        try collective.broadcast(optimizer.firstMoment, bytes: model.parameterCount * 4)
        try collective.broadcast(optimizer.secondMoment, bytes: model.parameterCount * 4)
        resumedAt = resume == nil ? nil : state.step
    }

    /// Every rank checks that its configuration, build and parameter count equal rank 0's; all
    /// ranks learn the outcome from one reduction, so a mismatch stops the job rather than hangs it.
    private func agreeAcrossRanks() throws {
        guard collective.size > 1 else { return }
        let mine = "{\"build\":\"\(ReZeroBuild.identifier)\",\"parameters\":\(model.parameterCount),\"config\":\(config.json())}"
        let root = String(decoding: try collective.broadcast(Array(mine.utf8)), as: UTF8.self)
        let differences = TrainingConfig.differences(root, mine)
        var flags = [differences.isEmpty ? 0.0 : 1.0]
        try collective.allReduce(&flags, .sum)
        guard flags[0] > 0 else { return }
        if differences.isEmpty {
            throw ConfigError("\(Int(flags[0])) rank(s) started with a configuration different from rank 0's; see their messages")
        }
        throw ConfigError("configuration differs from rank 0's: " + differences.joined(separator: "; "))
    }

    /// SIGTERM or SIGINT asks for a checkpoint and a clean stop. A second Ctrl-C exits at once; a
    /// repeated SIGTERM does not, since schedulers often send it to every process of a job.
    public static func installSignalHandlers() {
        signal(SIGTERM) { _ in stopSignalled = 1 }
        signal(SIGINT) { received in
            if stopSignalled != 0 { _exit(128 + received) }
            stopSignalled = 1
        }
    }

    // MARK: The step

    /// One optimizer step (state.step + 1). Returns the global mean loss and the gradient norm
    /// before clipping, and whether any rank asked to stop.
    @discardableResult
    public func step() throws -> (loss: Double, gradientNorm: Double, stop: Bool) {
        let s = state.step + 1
        if model.debugStep != nil { model.debugStep = s }
        var timing = StepTiming()
        var clock = Clock()
        model.zeroGradients()
        // Summed over ranks with the step: [loss, stop requested].
        stepScalars[0] = 0
        stepScalars[1] = Double(stopSignalled)
        let lossScale = 1 / Float(workspace.rows * config.accumSteps * collective.size)
        // Debug mode checks the gradients before they are reduced, so it does not overlap.
        let overlap = config.overlapCommunication && collective.size > 1 && model.debugStep == nil
        for micro in 0..<config.accumSteps {
            // Each part's gradient is final once the last micro-batch's backward has passed it.
            model.gradientsReady = overlap && micro == config.accumSteps - 1 ? reduceWhenReady : nil
            let first = collective.rank * (config.batchSize / collective.size) + micro * microBatch
            corpus.fillTrainingBatch(tokens: workspace.tokens, targets: workspace.targets, seed: config.seed,
                                     step: s, first: first, count: microBatch, sequence: config.model.seqLen)
            stepScalars[0] += try model.forward(workspace)
            timing.forward += clock.lap()
            try model.backward(workspace, lossScale: lossScale)
            timing.backward += clock.lap()
        }
        try model.checkGradients()
        if overlap {
            try overlappedSum.finish()
        } else {
            try collective.allReduceSum(model.gradients, count: model.parameterCount)
        }
        try collective.allReduce(&stepScalars, .sum)
        timing.allReduce = clock.lap()
        let loss = stepScalars[0] / Double(config.accumSteps * collective.size)
        let norm = globalNorm(model.gradients, count: model.parameterCount)
        if config.clip > 0 && norm > config.clip {
            let scale = Float(config.clip / norm)
            for i in 0..<model.parameterCount { model.gradients[i] *= scale }
        }
        optimizer.step(parameters: model.parameters, gradients: model.gradients,
                       learningRate: config.schedulePlan.rate(at: s))
        timing.optimizer = clock.lap()
        lastTiming = timing
        state.step = s
        state.tokensSeen += config.batchSize * config.model.seqLen
        return (loss, norm, stepScalars[1] > 0)
    }

    // MARK: The loop

    public func run() throws -> TrainingSummary {
        try prepareRunDirectory()
        let start = state.step
        let tokensPerStep = config.batchSize * config.model.seqLen
        log("training \(config.model.variant.rawValue): \(config.model.layers) layers, d=\(config.model.dModel), \(config.model.heads) heads, \(model.parameterCount.formatted()) parameters; \(collective.size) rank(s) × \(BLAS.threads) BLAS thread(s); global batch \(config.batchSize) × \(config.model.seqLen) = \(tokensPerStep) tokens/step (\(microBatch) per micro-batch × \(config.accumSteps) accumulation step(s) per rank)")
        var lastLoss: Double?
        var initialLoss: Double?
        var stepsAboveInitial = 0
        var windowStart = Date()
        var windowSteps = 0
        let runStart = Date()
        var status = TrainingSummary.Status.completed
        var message: String?
        while state.step < config.steps {
            let (loss, norm, stop) = try step()
            lastLoss = loss
            windowSteps += 1
            let s = state.step
            initialLoss = initialLoss ?? loss
            stepsAboveInitial = loss > initialLoss! ? stepsAboveInitial + 1 : 0
            let sustained = config.divergencePatience > 0 && stepsAboveInitial >= config.divergencePatience
            if !loss.isFinite || sustained {
                status = .diverged
                message = loss.isFinite
                    ? String(format: "training diverged at step %d: loss %.4f has stayed above the first step's %.4f for %d steps",
                             s, loss, initialLoss!, stepsAboveInitial)
                    : "training diverged at step \(s): loss is \(loss) (run with --debug to find the first non-finite tensor)"
                log(message!)
                // JSON has no NaN: a non-finite loss is written as null.
                writeMetrics(["step": s, "diverged": true, "loss": loss.isFinite ? loss : NSNull()])
                break
            }
            if s % config.logEvery == 0 || s == config.steps || s == start + 1 {
                let elapsed = Date().timeIntervalSince(windowStart)
                let tokensPerSecond = Double(windowSteps * tokensPerStep) / Swift.max(elapsed, 1e-9)
                logStep(s, loss: loss, norm: norm, tokensPerSecond: tokensPerSecond,
                        elapsed: Date().timeIntervalSince(runStart), stepsDone: s - start)
                windowStart = Date()
                windowSteps = 0
            }
            if config.checkEvery > 0 && s % config.checkEvery == 0 { try checkReplicasAgree() }
            if config.evalEvery > 0 && s % config.evalEvery == 0 && s != config.steps { try evaluate() }
            if stop {
                status = .stopped
                break
            }
            if config.checkpointEvery > 0 && s % config.checkpointEvery == 0 && s != config.steps {
                try saveCheckpoint(final: false)
            }
        }
        // A stopped job is being preempted: it checkpoints at once and leaves evaluation to later.
        let valid = status == .completed ? try evaluate() : nil
        let checkpoint = status == .diverged ? nil : try saveCheckpoint(final: true)
        if status == .stopped, let checkpoint {
            message = "stopped by signal at step \(state.step); checkpoint \(checkpoint). Resume with: rezero train --resume \(checkpoint) (plus the same flags)"
            log(message!)
        }
        let summary = TrainingSummary(status: status, step: state.step, finalLoss: lastLoss, validBitsPerByte: valid,
                                      bestValidBitsPerByte: state.bestValidBitsPerByte,
                                      entropyRate: corpus.entropyRate, checkpoint: checkpoint, message: message)
        if collective.isRoot, let runDirectory {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try AtomicFile.write(try encoder.encode(summary), to: runDirectory + "/summary.json")
        }
        return summary
    }

    private func logStep(_ s: Int, loss: Double, norm: Double, tokensPerSecond: Double, elapsed: Double, stepsDone: Int) {
        let alphas = (0..<config.model.layers).compactMap { l in
            model.layout.layers[l].alpha.map { Double(model.parameters[$0]) }
        }
        let lr = config.schedulePlan.rate(at: s)
        let eta = elapsed / Double(stepsDone) * Double(config.steps - s)
        var line = String(format: "step %\(String(config.steps).count)d/%d | loss %.4f | bpb %.4f | lr %.2e | grad norm %.3f",
                          s, config.steps, loss, loss / Double.log(2), lr, norm)
        if let lo = alphas.min(), let hi = alphas.max() { line += String(format: " | α [%.4f, %.4f]", lo, hi) }
        line += String(format: " | %.0f tok/s | ETA %@", tokensPerSecond, formatDuration(eta))
        log(line)
        var record: [String: Any] = ["step": s, "loss": loss, "bpb": loss / Double.log(2), "lr": lr,
                                     "grad_norm": norm, "tokens_per_s": tokensPerSecond,
                                     "tokens": state.tokensSeen, "elapsed_s": elapsed]
        if !alphas.isEmpty { record["alpha"] = alphas }
        writeMetrics(record)
    }

    /// Validation bits per byte over the first --eval-bytes of the valid split, logged and kept.
    @discardableResult
    public func evaluate() throws -> Double {
        let bpb = try evaluator.bitsPerByte(.valid, limit: config.evalBytes > 0 ? config.evalBytes : nil)
        validationHistory.append((state.step, bpb))
        if bpb < (state.bestValidBitsPerByte ?? .infinity) { state.bestValidBitsPerByte = bpb }
        var line = String(format: "step %d | valid bpb %.4f", state.step, bpb)
        if let h = corpus.entropyRate { line += String(format: " (source entropy rate %.4f, gap %.4f)", h, bpb - h) }
        log(line)
        writeMetrics(["step": state.step, "valid_bpb": bpb])
        return bpb
    }

    /// Replicas must hold bit-identical parameters; a drift stops the job.
    private func checkReplicasAgree() throws {
        guard collective.size > 1 else { return }
        let hash = fnv1a64(UnsafeRawBufferPointer(start: model.parameters, count: model.parameterCount * 4))
        // Two halves as Doubles: exact for 32-bit values, so max == min iff all ranks agree.
        var high = [Double(hash >> 32), Double(hash & 0xffff_ffff)]
        var low = high
        try collective.allReduce(&high, .max)
        try collective.allReduce(&low, .min)
        if high != low {
            throw ConfigError("replicas drifted apart at step \(state.step): parameter checksums differ across ranks")
        }
    }

    // MARK: Files

    private func prepareRunDirectory() throws {
        guard collective.isRoot, let runDirectory else { return }
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw ConfigError("--run-dir \(runDirectory): cannot create the directory (\(error.localizedDescription))")
        }
        CheckpointDirectory(runDirectory).removeInterruptedWrites()
        try AtomicFile.write(Data((config.json(pretty: true) + "\n").utf8), to: runDirectory + "/config.json")
        // A resumed run keeps the lines up to its checkpoint and logs the later steps again; a
        // fresh run starts the file anew.
        let metricsPath = runDirectory + "/metrics.jsonl"
        var kept = Data()
        if let resumedAt, let old = FileManager.default.contents(atPath: metricsPath) {
            for line in old.split(separator: UInt8(ascii: "\n")) {
                let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
                if let step = record?["step"] as? Int, step <= resumedAt { kept.append(contentsOf: line + [UInt8(ascii: "\n")]) }
            }
        }
        try AtomicFile.write(kept, to: metricsPath)
        metrics = FileHandle(forWritingAtPath: metricsPath)
        metrics?.seekToEndOfFile()
    }

    private func writeMetrics(_ record: [String: Any]) {
        guard let metrics, let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        metrics.write(data + Data("\n".utf8))
    }

    /// Rank 0 writes the checkpoint; the others wait at a barrier only for it. A periodic write
    /// that fails is reported and training goes on; the final one is an error.
    @discardableResult
    public func saveCheckpoint(final: Bool) throws -> String? {
        guard let runDirectory else { return nil }
        var path: String?
        var failure: String?
        if collective.isRoot {
            let candidate = runDirectory + String(format: "/ckpt-%08d.safetensors", state.step)
            do {
                try Checkpoint.save(path: candidate, config: config, state: state, layout: model.layout,
                                    parameters: model.parameters, optimizer: optimizer)
                try CheckpointDirectory(runDirectory).commit(candidate, validBitsPerByte: validationHistory.last { $0.step == state.step }?.bitsPerByte,
                                                             keep: config.keep)
                path = candidate
                log("checkpoint \(candidate)")
            } catch {
                failure = "checkpoint at step \(state.step) failed: \(error); the previous checkpoint is untouched"
                log(failure!)
            }
        }
        try collective.barrier()
        if final, let failure { throw ConfigError(failure) }
        return path
    }
}

/// Wall-clock laps for the step's time split.
struct Clock {
    private var last = DispatchTime.now().uptimeNanoseconds
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) * 1e-9
    }
}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

public enum ReZeroBuild {
    /// A hash of this executable, compared across ranks at start: ranks running different builds
    /// must not train together.
    public static let identifier: String = {
        guard let binary = FileManager.default.contents(atPath: "/proc/self/exe") else { return "unknown" }
        return String(binary.withUnsafeBytes { fnv1a64($0) }, radix: 16)
    }()
}
