import ArgumentParser
import Foundation
import ReZero

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (single process, or every rank of an mpirun job).",
        discussion: """
        Writes config.json, metrics.jsonl, summary.json and checkpoints to the run directory. SIGTERM, \
        SIGINT, SIGUSR1 or SIGUSR2 on any rank stops every rank at the same step after a checkpoint.
        \(ExitStatus.summary)
        """)
    static let latestCheckpoint = "latest"

    @OptionGroup var model: ModelOptions<TrainingDefaults>
    @OptionGroup var training: TrainingOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var watchdog: WatchdogOptions
    @Option(name: .customLong("run-dir"), help: "Run directory (default: runs/<timestamp>; with --resume PATH, the checkpoint's directory).") var runDir: String?
    @OptionGroup var cadence: RunOptions
    @Option(help: ArgumentHelp("Resume from a checkpoint: bare --resume takes the newest valid one in --run-dir (starting fresh if it has none); --resume PATH takes that file.", valueName: "path")) var resume: String?
    @Flag(name: .customLong("allow-data-change"), help: "Resume on a corpus other than the checkpoint's (by size and hash of its bytes); without it that is an error.") var allowDataChange = false
    @Flag(help: "Single-threaded, and stops at the first NaN/Inf activation or gradient, naming tensor, layer and step (exit 3).") var debug = false

    func validate() throws {
        if resume == Self.latestCheckpoint && runDir == nil {
            throw ValidationError("--resume without a path needs --run-dir")
        }
    }

    func run() throws {
        StopSignal.install()
        runJob(threads: threads, collectiveTimeout: watchdog.collectiveTimeout, debug: debug) { collective in
            try train(collective, say: rootPrinter(collective)).exitStatus
        }
    }

    private func train(_ collective: Collective, say: @escaping (String) -> Void) throws -> TrainingSummary {
        let checkpoint = try resumeCheckpoint(say: say)
        var config = checkpoint?.config ?? TrainingConfig()
        let saved = config
        model.apply(to: &config.model)
        training.apply(to: &config)
        cadence.apply(to: &config)
        if let checkpoint {
            let architecture = config.model.differences(from: saved.model)
            if !architecture.isEmpty {
                throw RezeroError.usage("architecture flags disagree with checkpoint \(checkpoint.path): " + architecture.joined(separator: "; "))
            }
            say("resuming from \(checkpoint.path) at step \(checkpoint.state.step) (saved by \(checkpoint.state.worldSize) rank(s))")
            for change in JSONDifferences.between(saved.json(), config.json()) { say("changed on resume: \(change)") }
        }
        // A new run takes --data, else data/enwik8, else the built-in corpus; a resumed run keeps its own.
        let corpus = checkpoint == nil ? try Corpus.forNewRun(path: config.data) : try Corpus.recorded(path: config.data)
        if let checkpoint, checkpoint.corpus == nil {
            say("checkpoint \(checkpoint.path) (format version 2) does not record its corpus: not checking that it was \(corpus.identity)")
        }
        if let checkpoint, let recorded = checkpoint.corpus, !corpus.identity.sameBytes(as: recorded) {
            guard allowDataChange else {
                throw RezeroError.usage("--data: \(corpus.identity) is not the corpus checkpoint \(checkpoint.path) was trained on, \(recorded); pass --allow-data-change to resume on it anyway")
            }
            say("--allow-data-change: resuming on \(corpus.identity) instead of \(recorded)")
        }
        if let h = corpus.entropyRate {
            let why = checkpoint == nil ? "no --data and no data/enwik8: training" : "resuming"
            say(why + String(format: " on the built-in synthetic corpus (%d bytes, entropy rate %.4f bits/byte)", corpus.bytes.count, h))
        } else {
            config.data = corpus.name
        }
        let directory = runDir ?? checkpoint.map { URL(fileURLWithPath: $0.path).deletingLastPathComponent().path }
            ?? "runs/" + Self.timestamp()
        let trainer = try Trainer(config: config, corpus: corpus, collective: collective,
                                  threads: threads.count(collective, debug: debug), resume: checkpoint, debug: debug)
        let run = try TrainingRun(trainer: trainer, runDirectory: directory,
                                  resumedAt: checkpoint == nil ? nil : trainer.state.step, log: say)
        run.resumeCommand = ProcessInfo.processInfo.environment["REZERO_RESUME_COMMAND"]
        say("run directory \(directory)")
        let summary = try run.run()
        if let valid = summary.validBpb {
            var line = String(format: "done: step %d, valid bpb %.4f", summary.step, valid)
            if let h = summary.entropyRate { line += String(format: " vs entropy rate %.4f (gap %.4f)", h, valid - h) }
            say(line)
        }
        return summary
    }

    /// The checkpoint --resume names, if any: a file, or the newest valid one in --run-dir.
    private func resumeCheckpoint(say: (String) -> Void) throws -> Checkpoint.Loaded? {
        guard let resume else { return nil }
        guard resume == Self.latestCheckpoint, let runDir else { return try Checkpoint.load(path: resume) }
        let store = CheckpointDirectory(runDir)
        if store.checkpoints().isEmpty {
            say("--resume: no checkpoint in \(runDir) yet; starting from step 0")
            return nil
        }
        return try store.latestValid(warn: say)
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }
}
