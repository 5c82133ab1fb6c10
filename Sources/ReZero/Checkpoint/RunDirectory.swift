import Foundation

/// Everything a run writes, in one directory (rank 0 only): config.json, metrics.jsonl,
/// summary.json, and the checkpoints with `latest` and checkpoints.json (`CheckpointDirectory`).
/// One job at a time: the run holds an exclusive lock on the directory's `lock` file.
///
/// No write traps: each goes through write(2) and a failure is reported once and remembered in
/// `lost`, which summary.json repeats and which makes the run exit 1.
public final class RunDirectory {
    public let path: String
    public let checkpoints: CheckpointDirectory
    private let lock: RunDirectoryLock
    private let metrics: AppendingFile
    private let corpus: CorpusIdentity
    private let warn: (String) -> Void
    /// Metrics records that could not be appended: the first one's step, how many, why.
    private var metricsLost: (step: Int, count: Int, problem: String)?
    private var otherLosses: [String] = []

    var summaryPath: String { path + "/summary.json" }

    /// What the run failed to write, one line each; empty when every file is complete.
    var lost: [String] {
        let metrics = metricsLost.map { "metrics.jsonl: \($0.count) record(s) from step \($0.step) on (\($0.problem))" }
        return (metrics.map { [$0] } ?? []) + otherLosses
    }

    /// Creates the directory if needed, locks it, and writes config.json. A fresh run starts
    /// metrics.jsonl anew; a run resumed at step `resumedAt` keeps the records up to that step.
    public init(path: String, config: TrainingConfig, corpus: CorpusIdentity, resumedAt: Int?,
                warn: @escaping (String) -> Void) throws {
        self.path = path
        self.corpus = corpus
        self.warn = warn
        checkpoints = CheckpointDirectory(path)
        try Self.refuseOtherArchitecture(in: path, config: config)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RezeroError.usage("--run-dir \(path): cannot create the directory (\(error.localizedDescription))")
        }
        lock = try RunDirectoryLock(directory: path, warn: warn)
        checkpoints.removeInterruptedWrites()
        try AtomicFile.write(Data((config.json(pretty: true) + "\n").utf8), to: path + "/config.json")
        let metricsPath = path + "/metrics.jsonl"
        var kept = Data()
        if let resumedAt, let records = try? MetricsLog.read(metricsPath) {
            for record in records where record.step <= resumedAt { kept.append(MetricsLog.line(record)) }
        }
        try AtomicFile.write(kept, to: metricsPath)
        metrics = try AppendingFile(path: metricsPath)
    }

    /// A directory is one run's: training another architecture there would overwrite its config
    /// and metrics and mix its checkpoints with the new ones, and a later --resume could pick
    /// either. Training flags may differ (a resumed run changes --steps, --lr, …).
    static func refuseOtherArchitecture(in path: String, config: TrainingConfig) throws {
        guard let json = try? String(contentsOfFile: path + "/config.json", encoding: .utf8),
              let previous = try? TrainingConfig.decode(json: json) else { return }
        let differences = config.model.differences(from: previous.model)
        if !differences.isEmpty {
            throw RezeroError.usage("--run-dir \(path) holds a run of another architecture (\(differences.joined(separator: "; "))); "
                                    + "resume it with its own flags or choose another run directory")
        }
    }

    public func append(_ record: MetricsRecord) {
        do {
            try metrics.append(MetricsLog.line(record))
        } catch {
            if let lost = metricsLost {
                metricsLost!.count = lost.count + 1
            } else {
                warn("warning: \(error); training goes on, but metrics records are being lost")
                metricsLost = (record.step, 1, "\(error)")
            }
        }
    }

    /// Reports a file (or part of one) that could not be written.
    func recordLoss(_ what: String) {
        otherLosses.append(what)
    }

    public func writeSummary(_ summary: TrainingSummary) throws {
        try AtomicFile.write(Data((JSONCoding.string(summary, pretty: true) + "\n").utf8), to: summaryPath)
    }

    /// Writes the trainer's checkpoint for its current step, points `latest` at it and prunes to
    /// `config.keep` (plus the best by validation bits/byte). Returns its path. A checkpoint that
    /// cannot be written or pointed at leaves `latest` and the checkpoint it names untouched; an
    /// index that cannot be updated is recorded as lost.
    public func saveCheckpoint(_ trainer: Trainer, validBpb: Double?) throws -> String {
        let file = path + String(format: "/ckpt-%08d.safetensors", trainer.state.step)
        try Checkpoint.save(path: file, config: trainer.config, state: trainer.state, corpus: corpus,
                            layout: trainer.model.layout, parameters: trainer.model.parameters, optimizer: trainer.optimizer)
        if let problem = try checkpoints.commit(file, validBitsPerByte: validBpb, keep: trainer.config.keep) {
            warn("warning: \(problem)")
            recordLoss(problem)
        }
        return file
    }
}

/// An exclusive flock(2) on `<run directory>/lock`, which names its holder. The kernel releases it
/// when the process ends however it ends, so a crashed run never blocks its restart.
private final class RunDirectoryLock {
    private let descriptor: Int32

    init(directory: String, warn: (String) -> Void) throws {
        let path = directory + "/lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw RezeroError.failure("--run-dir \(directory): cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let problem = errno
            if problem != EWOULDBLOCK {
                // Some file systems have no flock; the run goes on unguarded rather than not at all.
                warn("warning: cannot lock \(path) (\(String(cString: strerror(problem)))); nothing stops another job from writing \(directory) at the same time")
                return
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(descriptor)
            throw RezeroError.usage("--run-dir \(directory) is in use by another job (\(holder.flatMap { $0.isEmpty ? nil : $0 } ?? "holder unknown")); wait for it to end or choose another --run-dir")
        }
        var host = [UInt8](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostName = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
        let holder = "pid \(getpid()) on \(hostName), since \(ISO8601DateFormatter().string(from: Date()))\n"
        // The lock holds whether or not the note can be written (a full disk).
        _ = ftruncate(descriptor, 0)
        _ = AtomicFile.writeAll(descriptor, Data(holder.utf8))
    }

    deinit { close(descriptor) }
}
