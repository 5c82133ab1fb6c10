import Foundation

/// Everything a run is: the architecture plus how it is trained. Saved as config.json and in
/// every checkpoint. On resume `model` must match; the training fields may change.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var model = ModelConfig()
    public var optimizer = OptimizerConfig()
    /// Global batch: sequences per optimizer step over all ranks and accumulation steps.
    public var batchSize = 16
    public var accumSteps = 1
    public var steps = 2000
    public var learningRate = 1e-3
    public var warmup = 100
    public var schedule = ScheduleKind.cosine
    public var clip = 1.0
    /// Dropout probability on the attention probabilities, after the FFN activation and on each
    /// sublayer's output before the residual add (0: none). Evaluation never drops.
    public var dropout = 0.0
    public var seed: UInt64 = 1
    /// The corpus file, or nil for the built-in synthetic source.
    public var data: String?
    public var logEvery = 10
    public var evalEvery = 200
    /// Bytes of the validation split scored by the periodic evaluation (0: the whole split).
    public var evalBytes = 1 << 20
    /// Bytes by which consecutive evaluation windows overlap, read as context only: each window
    /// scores its last seqLen − evalContext predictions (0: non-overlapping windows, all scored).
    public var evalContext = 0
    /// Every this many steps the ranks compare a checksum of their parameters.
    public var checkEvery = 100
    /// Checkpoint cadence in steps (0: only at the end).
    public var checkpointEvery = 500
    /// Checkpoints kept: the newest this many, plus the best by validation bits per byte.
    public var keep = 2
    /// Overlap the gradient all-reduce with backward (same sums, so the same model; a speed knob).
    public var overlapCommunication = true
    /// Training counts as diverged when the loss stays above the first step's loss for this many
    /// consecutive steps (0: only a non-finite loss counts).
    public var divergencePatience = 100

    public init() {}

    public var schedulePlan: Schedule {
        Schedule(kind: schedule, baseRate: learningRate, warmupSteps: warmup, totalSteps: steps)
    }

    /// The largest global batch (keeps activation sizes inside Int; see `ModelConfig.maximum`).
    public static let maximumBatch = 65536

    /// Throws a usage error naming the first invalid flag and value (architecture first).
    public func validate(worldSize: Int = 1) throws(RezeroError) {
        // The optimizer works in Float: a rate that overflows it would write infinities into the model.
        let floatLimit = Double(Float.greatestFiniteMagnitude)
        try model.validate()
        try require((1...Self.maximumBatch).contains(batchSize), "--batch-size", batchSize, "must be between 1 and \(Self.maximumBatch)")
        try require(accumSteps >= 1, "--accum-steps", accumSteps, "must be at least 1")
        try require(batchSize % (worldSize * accumSteps) == 0, "--batch-size", batchSize,
                    "must be divisible by ranks × --accum-steps = \(worldSize) × \(accumSteps)")
        try require(steps >= 1, "--steps", steps, "must be at least 1")
        try require(learningRate > 0 && learningRate.isFinite, "--lr", learningRate, "must be positive")
        try require(learningRate <= floatLimit, "--lr", learningRate, "overflows Float (largest \(floatLimit))")
        let alphaMultiplier = optimizer.alphaLearningRateMultiplier
        try require(alphaMultiplier >= 0 && learningRate * alphaMultiplier <= floatLimit, "--alpha-lr-mult", alphaMultiplier,
                    "must be non-negative, and × --lr \(learningRate) must not overflow Float")
        try require(warmup >= 0, "--warmup", warmup, "must be non-negative")
        try require(clip >= 0, "--clip", clip, "must be non-negative (0 disables clipping)")
        try require(dropout >= 0 && dropout < 1, "--dropout", dropout, "must be at least 0 and below 1")
        try require(optimizer.weightDecay >= 0 && learningRate * optimizer.weightDecay <= floatLimit, "--weight-decay",
                    optimizer.weightDecay, "must be non-negative, and × --lr \(learningRate) must not overflow Float")
        try require(logEvery >= 1, "--log-every", logEvery, "must be at least 1")
        try require(evalEvery >= 0, "--eval-every", evalEvery, "must be non-negative (0 disables)")
        try require(evalBytes == 0 || evalBytes >= 2, "--eval-bytes", evalBytes,
                    "must be 0 (the whole split) or at least 2 (a scored byte needs one before it)")
        try Corpus.validate(evalContext: evalContext, sequence: model.seqLen)
        try require(checkEvery >= 0, "--check-every", checkEvery, "must be non-negative")
        try require(checkpointEvery >= 0, "--ckpt-every", checkpointEvery, "must be non-negative")
        try require(keep >= 1, "--keep", keep, "must be at least 1")
        try require(divergencePatience >= 0, "--diverge-patience", divergencePatience, "must be non-negative")
    }

    public func json(pretty: Bool = false) -> String { JSONCoding.string(self, pretty: pretty) }

    /// Reads a configuration; a key it lacks takes its default, so that the configuration of a
    /// run from before a field existed (in its checkpoints, config.json) still reads, as that run.
    public static func decode(json: String) throws -> TrainingConfig {
        try JSONCoding.decode(TrainingConfig.self, from: json, defaults: TrainingConfig())
    }
}
