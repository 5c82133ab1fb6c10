import Foundation

/// The run around the step: the cadences (log, evaluate, check the replicas, checkpoint),
/// divergence, stop signals and the console. Files go through `RunDirectory`, on rank 0 only.
public final class TrainingRun {
    public let trainer: Trainer
    /// Rank 0's run directory; nil on the other ranks and for runs that write no files.
    public let directory: RunDirectory?
    /// Whether the run writes files at all (known on every rank, so all take part in checkpoints).
    let writesFiles: Bool
    let evaluator: Evaluator
    private let log: (String) -> Void
    /// Validation bits per byte by step, in the order measured.
    public private(set) var validationHistory: [(step: Int, bitsPerByte: Double)] = []

    private var config: TrainingConfig { trainer.config }
    private var collective: Collective { trainer.collective }

    /// - Parameters:
    ///   - runDirectory: where rank 0 writes the run's files, or nil for none.
    ///   - resumedAt: the step the trainer's checkpoint was taken at, when resuming.
    public init(trainer: Trainer, runDirectory: String?, resumedAt: Int? = nil, log: @escaping (String) -> Void) throws {
        self.trainer = trainer
        let isRoot = trainer.collective.isRoot
        self.log = isRoot ? log : { _ in }
        writesFiles = runDirectory != nil
        directory = try runDirectory.flatMap { path in
            isRoot ? try RunDirectory(path: path, config: trainer.config, resumedAt: resumedAt, warn: log) : nil
        }
        evaluator = Evaluator(model: trainer.model, corpus: trainer.corpus, collective: trainer.collective,
                              batch: trainer.microBatch, context: trainer.config.evalContext, team: trainer.workers.team)
    }

    public func run() throws -> TrainingSummary {
        let m = config.model, tokensPerStep = config.batchSize * m.seqLen
        log("training \(m.variant.rawValue): \(m.layers) layers, d=\(m.dModel), \(m.heads) heads, \(trainer.model.parameterCount.formatted()) parameters; \(collective.size) rank(s) × \(trainer.threadLayout); global batch \(config.batchSize) × \(m.seqLen) = \(tokensPerStep) tokens/step (\(trainer.microBatch) per micro-batch × \(config.accumSteps) accumulation step(s) per rank)")
        let start = trainer.state.step
        var divergence = DivergenceMonitor(patience: config.divergencePatience)
        var window = (clock: Clock(), steps: 0)
        var runClock = Clock(), elapsed = 0.0
        var lastLoss: Double?
        var lastStep = start
        var status = TrainingSummary.Status.completed
        var message: String?
        while trainer.state.step < config.steps {
            let result = try trainer.step(stopRequested: StopSignal.requested != nil)
            let s = trainer.state.step + (result.applied ? 0 : 1)
            lastLoss = result.loss
            lastStep = s
            window.steps += 1
            elapsed += runClock.lap()
            if let reason = divergence.observe(result) {
                status = .diverged
                message = "training diverged at step \(s): \(reason)"
                log(message!)
                directory?.append(MetricsRecord(step: s, loss: result.loss, gradNorm: result.gradientNorm, diverged: true))
                break
            }
            if s % config.logEvery == 0 || s == config.steps || s == start + 1 {
                let tokensPerSecond = Double(window.steps * tokensPerStep) / Swift.max(window.clock.lap(), 1e-9)
                logStep(s, result, tokensPerSecond: tokensPerSecond, elapsed: elapsed, stepsDone: s - start)
                window.steps = 0
            }
            if config.checkEvery > 0 && s % config.checkEvery == 0 { try checkReplicasAgree() }
            if config.evalEvery > 0 && s % config.evalEvery == 0 && s != config.steps { try evaluate() }
            if result.stopRequested {
                status = .stopped
                break
            }
            if writesFiles && config.checkpointEvery > 0 && s % config.checkpointEvery == 0 && s != config.steps {
                _ = try saveCheckpoint()
            }
        }
        // A stopped job is being preempted: it checkpoints at once and leaves evaluation to later.
        let valid = status == .completed ? try evaluate() : nil
        var checkpoint: String?
        var failure: String?
        if status != .diverged && writesFiles {
            (checkpoint, failure) = try saveCheckpoint()
        }
        if status == .stopped, let checkpoint {
            message = "stopped by signal at step \(trainer.state.step); checkpoint \(checkpoint). Resume with: rezero train --resume \(checkpoint) (plus the same flags)"
            log(message!)
        }
        if let failure { message = [message, "the final " + failure].compactMap { $0 }.joined(separator: "; ") }
        let summary = TrainingSummary(status: status, step: lastStep, finalLoss: lastLoss, validBpb: valid,
                                      bestValidBpb: trainer.state.bestValidBpb, entropyRate: trainer.corpus.entropyRate,
                                      checkpoint: checkpoint, message: message)
        try directory?.writeSummary(summary)
        if let failure { throw RezeroError.failure("the final " + failure) }
        return summary
    }

    private func logStep(_ s: Int, _ result: Trainer.StepResult, tokensPerSecond: Double, elapsed: Double, stepsDone: Int) {
        let alphas = trainer.model.alphas
        let lr = config.schedulePlan.rate(at: s), bpb = result.loss / M_LN2
        let eta = elapsed / Double(stepsDone) * Double(config.steps - s)
        var line = String(format: "step %\(String(config.steps).count)d/%d | loss %.4f | bpb %.4f | lr %.2e | grad norm %.3f",
                          s, config.steps, result.loss, bpb, lr, result.gradientNorm)
        if let lo = alphas.min(), let hi = alphas.max() { line += String(format: " | α [%.4f, %.4f]", lo, hi) }
        line += String(format: " | %.0f tok/s | ETA %@", tokensPerSecond, Clock.format(eta))
        log(line)
        directory?.append(MetricsRecord(step: s, loss: result.loss, bpb: bpb, lr: lr, gradNorm: result.gradientNorm,
                                        alpha: alphas.isEmpty ? nil : alphas, tokensPerS: tokensPerSecond,
                                        tokens: trainer.state.tokensSeen, elapsedS: elapsed))
    }

    /// Validation bits per byte over the first --eval-bytes of the valid split (windows overlapping
    /// by --eval-context), logged and kept.
    @discardableResult
    public func evaluate() throws -> Double {
        let step = trainer.state.step
        let bpb = try evaluator.bitsPerByte(.valid, limit: config.evalBytes > 0 ? config.evalBytes : nil)
        validationHistory.append((step, bpb))
        if bpb < (trainer.state.bestValidBpb ?? .infinity) { trainer.state.bestValidBpb = bpb }
        var line = String(format: "step %d | valid bpb %.4f, eval context %d", step, bpb, evaluator.context)
        if let h = trainer.corpus.entropyRate { line += String(format: " (source entropy rate %.4f, gap %.4f)", h, bpb - h) }
        log(line)
        directory?.append(MetricsRecord(step: step, validBpb: bpb, evalContext: evaluator.context))
        return bpb
    }

    private func checkReplicasAgree() throws {
        guard try collective.parametersAgree(trainer.model.parameters, count: trainer.model.parameterCount) else {
            throw RezeroError.failure("replicas drifted apart at step \(trainer.state.step): parameter checksums differ across ranks")
        }
    }

    /// Rank 0 writes the checkpoint and every rank learns whether that worked. A failure leaves the
    /// previous checkpoint untouched and is reported; the caller decides whether it is fatal.
    private func saveCheckpoint() throws -> (path: String?, failure: String?) {
        let step = trainer.state.step
        var path: String?, failure: String?
        if let directory {
            do {
                path = try directory.saveCheckpoint(trainer, validBpb: validationHistory.last { $0.step == step }?.bitsPerByte)
                log("checkpoint \(path!)")
            } catch {
                failure = "checkpoint at step \(step) failed: \(error); the previous checkpoint is untouched"
                log(failure!)
            }
        }
        var failed = [failure == nil ? 0.0 : 1.0]
        try collective.allReduce(&failed, .sum)
        if failed[0] > 0 && failure == nil { failure = "checkpoint at step \(step) failed on rank 0" }
        return (path, failure)
    }
}

/// Declares a run diverged: a non-finite loss or gradient norm (caught before the optimizer step
/// applies it), or a loss that stays above the first step's for `patience` consecutive steps.
struct DivergenceMonitor {
    let patience: Int
    private var initialLoss: Double?
    private var stepsAboveInitial = 0

    init(patience: Int) { self.patience = patience }

    /// The reason the run diverged with this step, or nil.
    mutating func observe(_ result: Trainer.StepResult) -> String? {
        guard result.applied else {
            return result.loss.isFinite
                ? "the gradient norm is \(result.gradientNorm) (the step was not applied; run with --debug to find the first non-finite tensor)"
                : "loss is \(result.loss) (the step was not applied; run with --debug to find the first non-finite tensor)"
        }
        let reference = initialLoss ?? result.loss
        initialLoss = reference
        stepsAboveInitial = result.loss > reference ? stepsAboveInitial + 1 : 0
        guard patience > 0 && stepsAboveInitial >= patience else { return nil }
        return String(format: "loss %.4f has stayed above the first step's %.4f for %d steps", result.loss, reference, stepsAboveInitial)
    }
}
