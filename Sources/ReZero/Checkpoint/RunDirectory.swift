import Foundation

/// Everything a run writes, in one directory (rank 0 only): config.json, metrics.jsonl,
/// summary.json, and the checkpoints with `latest` and checkpoints.json (`CheckpointDirectory`).
public final class RunDirectory {
    public let path: String
    public let checkpoints: CheckpointDirectory
    private let metrics: AppendingFile
    /// Reports a failed write once; training goes on where that is safe.
    private let warn: (String) -> Void
    private var metricsFailed = false

    public var metricsPath: String { path + "/metrics.jsonl" }
    public var summaryPath: String { path + "/summary.json" }

    /// Creates the directory if needed and writes config.json. A fresh run starts metrics.jsonl
    /// anew; a run resumed at step `resumedAt` keeps the records up to that step.
    public init(path: String, config: TrainingConfig, resumedAt: Int?, warn: @escaping (String) -> Void) throws {
        self.path = path
        self.warn = warn
        checkpoints = CheckpointDirectory(path)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw RezeroError.usage("--run-dir \(path): cannot create the directory (\(error.localizedDescription))")
        }
        checkpoints.removeInterruptedWrites()
        try AtomicFile.write(Data((config.json(pretty: true) + "\n").utf8), to: path + "/config.json")
        var kept = Data()
        if let resumedAt, let records = try? MetricsLog.read(path + "/metrics.jsonl") {
            for record in records where record.step <= resumedAt { kept.append(MetricsLog.line(record)) }
        }
        try AtomicFile.write(kept, to: path + "/metrics.jsonl")
        metrics = try AppendingFile(path: path + "/metrics.jsonl")
    }

    public func append(_ record: MetricsRecord) {
        do {
            try metrics.append(MetricsLog.line(record))
        } catch {
            if !metricsFailed { warn("warning: \(error); metrics of later steps may be missing") }
            metricsFailed = true
        }
    }

    public func writeSummary(_ summary: TrainingSummary) throws {
        try AtomicFile.write(Data((JSONCoding.string(summary, pretty: true) + "\n").utf8), to: summaryPath)
    }

    /// Writes the trainer's checkpoint for its current step, points `latest` at it and prunes to
    /// `config.keep` (plus the best by validation bits/byte). Returns its path.
    public func saveCheckpoint(_ trainer: Trainer, validBpb: Double?) throws -> String {
        let file = path + String(format: "/ckpt-%08d.safetensors", trainer.state.step)
        try Checkpoint.save(path: file, config: trainer.config, state: trainer.state, layout: trainer.model.layout,
                            parameters: trainer.model.parameters, optimizer: trainer.optimizer)
        try checkpoints.commit(file, validBitsPerByte: validBpb, keep: trainer.config.keep)
        return file
    }
}
