import ArgumentParser
import Foundation
import ReZero

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (single process, or every rank of an mpirun job).",
        discussion: "Writes config.json, metrics.jsonl, summary.json and checkpoints to the run directory.")
    static let latestCheckpoint = "latest"
    private static let defaults = TrainingConfig()

    @OptionGroup var model: ModelOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var threads: ThreadOptions
    @Option(name: .customLong("run-dir"), help: "Run directory (default: runs/<timestamp>; with --resume PATH, the checkpoint's directory).") var runDir: String?
    @OptionGroup var cadence: RunOptions
    @Option(help: ArgumentHelp("Resume from a checkpoint: bare --resume takes the newest valid one in --run-dir (starting fresh if it has none); --resume PATH takes that file.", valueName: "path")) var resume: String?
    @Flag(help: "Single-threaded, deterministic, and stops at the first NaN/Inf activation or gradient, naming tensor, layer and step.") var debug = false

    func run() throws {
        let collective: Collective
        do { collective = try Collective(mpi: ()) } catch { fail("cannot start MPI: \(error)") }
        threads.configure(collective, debug: debug)
        Trainer.installSignalHandlers()
        let say: (String) -> Void = { if collective.isRoot { print($0) } }
        do {
            let summary = try train(collective, say: say)
            collective.finalize()
            switch summary.status {
            case .completed, .stopped: Foundation.exit(0)
            case .diverged: Foundation.exit(3)
            }
        } catch {
            if collective.size > 1 { collective.abort("error: \(error)") }
            fail("\(error)")
        }
    }

    private func train(_ collective: Collective, say: @escaping (String) -> Void) throws -> TrainingSummary {
        var directory = runDir
        var checkpoint: Checkpoint.Loaded?
        if let resume {
            if resume == Self.latestCheckpoint {
                guard let runDir else { throw ConfigError("--resume without a path needs --run-dir") }
                let store = CheckpointDirectory(runDir)
                if store.checkpoints().isEmpty {
                    say("--resume: no checkpoint in \(runDir) yet; starting from step 0")
                } else {
                    checkpoint = try store.latestValid(warn: say)
                }
            } else {
                checkpoint = try Checkpoint.load(path: resume)
                directory = directory ?? URL(fileURLWithPath: resume).deletingLastPathComponent().path
            }
        }
        var config = checkpoint?.config ?? TrainingConfig()
        let saved = config
        model.apply(to: &config.model)
        training.apply(to: &config)
        cadence.apply(to: &config)
        if let checkpoint {
            let architecture = TrainingConfig.differences(canonicalJSON(saved.model), canonicalJSON(config.model), prefix: "model.")
            if !architecture.isEmpty {
                throw ConfigError("architecture flags disagree with checkpoint \(checkpoint.path): " + architecture.joined(separator: "; "))
            }
            say("resuming from \(checkpoint.path) at step \(checkpoint.state.step) (saved by \(checkpoint.state.worldSize) rank(s))")
            for change in TrainingConfig.differences(saved.json(), config.json()) { say("changed on resume: \(change)") }
        }
        let corpus = try Corpus.resolve(path: config.data)
        if config.data == nil {
            if let h = corpus.entropyRate {
                say(String(format: "no --data and no data/enwik8: training on the built-in synthetic corpus (%d bytes, entropy rate %.4f bits/byte)", corpus.bytes.count, h))
            } else {
                config.data = corpus.name
            }
        }
        let runDirectory = directory ?? "runs/" + Self.timestamp()
        let trainer = try Trainer(config: config, corpus: corpus, collective: collective, runDirectory: runDirectory,
                                  resume: checkpoint, debug: debug, log: say)
        say("run directory \(runDirectory)")
        let summary = try trainer.run()
        if let valid = summary.validBitsPerByte {
            var line = String(format: "done: step %d, valid bpb %.4f", summary.step, valid)
            if let h = summary.entropyRate { line += String(format: " vs entropy rate %.4f (gap %.4f)", h, valid - h) }
            say(line)
        }
        return summary
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }
}
