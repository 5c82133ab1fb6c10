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
    /// The command a stopped run's message gives for resuming (launch/slurm.sbatch names its
    /// resubmission); nil for `rezero train --resume <checkpoint>`.
    public var resumeCommand: String?
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
            isRoot ? try RunDirectory(path: path, config: trainer.config, corpus: trainer.corpus.identity,
                                      resumedAt: resumedAt, warn: log) : nil
        }
        evaluator = Evaluator(model: trainer.model, corpus: trainer.corpus, collective: trainer.collective,
                              batch: trainer.microBatch, context: trainer.config.evalContext, team: trainer.workers.team)
    }

    public func run() throws -> TrainingSummary {
        let m = config.model, tokensPerStep = config.batchSize * m.seqLen
        log("training \(m.variant.rawValue): \(m.layers) layers, d=\(m.dModel), \(m.heads) heads, \(trainer.model.parameterCount.formatted()) parameters; \(collective.size) rank(s) × \(trainer.threadLayout); global batch \(config.batchSize) × \(m.seqLen) = \(tokensPerStep) tokens/step (\(trainer.microBatch) per micro-batch × \(config.accumSteps) accumulation step(s) per rank)")
        let start = trainer.state.step
        let divergence = DivergenceMonitor(patience: config.divergencePatience)
        var window = (clock: Clock(), steps: 0)
        var runClock = Clock(), elapsed = 0.0
        var lastLoss: Double?
        var lastStep = start
        var status = TrainingSummary.Status.completed
        var message: String?
        func diverged(at step: Int, _ reason: String, _ record: MetricsRecord) {
            status = .diverged
            message = "training diverged at step \(step): \(reason)"
            log(message!)
            directory?.append(record)
        }
        while trainer.state.step < config.steps {
            let result = try trainer.step(stopRequested: StopSignal.requested != nil)
            let s = trainer.state.step + (result.applied ? 0 : 1)
            lastLoss = result.loss
            lastStep = s
            window.steps += 1
            let seconds = runClock.lap()
            elapsed += seconds
            collective.watchdog?.observe(stepSeconds: seconds)
            if let finding = result.nonFinite, !collective.isRoot { printError("[rank \(collective.rank)] --debug: \(finding)") }
            if let reason = divergence.observe(result, state: &trainer.state) {
                diverged(at: s, reason, MetricsRecord(step: s, loss: result.loss, gradNorm: result.gradientNorm, diverged: true))
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
            if writesFiles && config.checkpointEvery > 0 && s % config.checkpointEvery == 0 && s != config.steps,
               case .nonFinite(let value) = try saveCheckpoint() {
                diverged(at: s, Self.nonFiniteReason(value), MetricsRecord(step: s, diverged: true))
                break
            }
        }
        // A stopped job is being preempted: it checkpoints at once and leaves evaluation to later.
        let valid = status == .completed ? try evaluate() : nil
        var checkpoint: String?
        if status != .diverged && writesFiles {
            switch try saveCheckpoint(final: true) {
            case .written(let path): checkpoint = path
            case .failed: break
            case .nonFinite(let value):
                diverged(at: trainer.state.step, Self.nonFiniteReason(value), MetricsRecord(step: trainer.state.step, diverged: true))
            }
        }
        if status == .stopped, let checkpoint {
            message = "stopped by signal at step \(trainer.state.step); checkpoint \(checkpoint). Resume with: \(resumeCommand ?? "rezero train --resume \(checkpoint) (plus the same flags)")"
            log(message!)
        }
        var summary = TrainingSummary(status: status, step: lastStep, finalLoss: lastLoss, validBpb: valid,
                                      bestValidBpb: trainer.state.bestValidBpb, entropyRate: trainer.corpus.entropyRate,
                                      checkpoint: checkpoint, message: message)
        return try finish(&summary)
    }

    /// Writes summary.json and decides the ending: a run that lost any write (the summary
    /// included) fails on every rank, unless it diverged, which says more.
    private func finish(_ summary: inout TrainingSummary) throws -> TrainingSummary {
        if let directory {
            var lost = directory.lost
            if !lost.isEmpty {
                summary.lost = lost
                summary.message = ([summary.message].compactMap { $0 } + ["not written: " + lost.joined(separator: "; ")])
                    .joined(separator: "; ")
            }
            do {
                try directory.writeSummary(summary)
            } catch {
                lost.append("summary.json (\(error))")
                log("error: \(error)")
            }
            summary.lost = lost.isEmpty ? nil : lost
        }
        var lostWrites = [summary.lost == nil ? 0.0 : 1.0]
        try collective.allReduce(&lostWrites, .sum)
        if lostWrites[0] > 0 && summary.status != .diverged {
            throw RezeroError.failure(collective.isRoot ? "files not written: " + (summary.lost ?? []).joined(separator: "; ")
                                                        : "rank 0 could not write every file (see its message)")
        }
        return summary
    }

    private static func nonFiniteReason(_ value: String) -> String {
        "the model holds a non-finite value (\(value)); no checkpoint is written with one"
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
        collective.watchdog?.phase = "evaluation at step"
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

    enum CheckpointOutcome {
        /// Written; the path on rank 0.
        case written(String?)
        case failed
        /// Not written: the model holds this non-finite value.
        case nonFinite(String)
    }

    /// Rank 0 writes the checkpoint (answering the watchdog's probes meanwhile) and every rank
    /// learns whether that worked. A model with a non-finite value is never written (every rank
    /// finds it in its identical replica). A failure leaves the previous checkpoint and `latest`
    /// untouched and is recorded as lost; training goes on.
    private func saveCheckpoint(final: Bool = false) throws -> CheckpointOutcome {
        let step = trainer.state.step
        if let value = trainer.firstNonFinite() { return .nonFinite(value) }
        collective.watchdog?.phase = "checkpoint at step"
        var path: String?
        if let directory {
            do {
                let valid = validationHistory.last { $0.step == step }?.bitsPerByte
                path = try collective.busy { try directory.saveCheckpoint(trainer, validBpb: valid) }
                log("checkpoint \(path!)")
            } catch {
                let what = "\(final ? "the final" : "the") checkpoint at step \(step) (\(error); earlier checkpoints are untouched)"
                log("error: could not write " + what)
                directory.recordLoss(what)
            }
        }
        var failed = [writesFiles && collective.isRoot && path == nil ? 1.0 : 0.0]
        try collective.allReduce(&failed, .max)
        return failed[0] > 0 ? .failed : .written(path)
    }
}

/// Declares a run diverged: a non-finite loss, gradient norm or `--debug` finding (caught before
/// the optimizer step applies it), or a loss that stays above the run's first step's for
/// `patience` consecutive steps. The reference and the count live in `TrainingState`, so they
/// survive a resume.
struct DivergenceMonitor {
    let patience: Int

    /// The reason the run diverged with this step, or nil.
    func observe(_ result: Trainer.StepResult, state: inout TrainingState) -> String? {
        guard result.applied else {
            if let finding = result.nonFinite { return "--debug found a \(finding) (the step was not applied)" }
            if result.loss.isFinite && result.gradientNorm.isFinite {
                return "--debug found a non-finite value on another rank (see its message; the step was not applied)"
            }
            return result.loss.isFinite
                ? "the gradient norm is \(result.gradientNorm) (the step was not applied; run with --debug to find the first non-finite tensor)"
                : "loss is \(result.loss) (the step was not applied; run with --debug to find the first non-finite tensor)"
        }
        let reference = state.initialLoss ?? result.loss
        state.initialLoss = reference
        state.stepsAboveInitialLoss = result.loss > reference ? state.stepsAboveInitialLoss + 1 : 0
        guard patience > 0 && state.stepsAboveInitialLoss >= patience else { return nil }
        return String(format: "loss %.4f has stayed above the first step's %.4f for %d steps", result.loss, reference,
                      state.stepsAboveInitialLoss)
    }
}
