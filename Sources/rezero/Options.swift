import ArgumentParser
import Foundation
import ReZero

extension Variant: ExpressibleByArgument {}
extension ActivationKind: ExpressibleByArgument {}
extension ScheduleKind: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension Split: ExpressibleByArgument {}

/// The architecture a subcommand starts from when no flag says otherwise.
protocol ModelDefaults {
    static var model: ModelConfig { get }
    /// False where the subcommand chooses the variants itself: --variant is then hidden from --help.
    static var takesVariant: Bool { get }
}

extension ModelDefaults {
    static var takesVariant: Bool { true }
}

/// `train`'s defaults: TrainingConfig's.
enum TrainingDefaults: ModelDefaults {
    static let config = TrainingConfig()
    static var model: ModelConfig { config.model }
}

/// `compare`'s: train's, with the variants taken from --runs.
enum CompareDefaults: ModelDefaults {
    static var model: ModelConfig { TrainingDefaults.model }
    static var takesVariant: Bool { false }
}

/// Architecture flags. Optional so that a resumed run takes them from its checkpoint; the help
/// shows the defaults of the subcommand that uses them.
struct ModelOptions<Defaults: ModelDefaults>: ParsableArguments {
    @Option(help: "Transformer layers (default: \(Defaults.model.layers)).") var layers: Int?
    @Option(name: .customLong("d-model"), help: "Model width d (default: \(Defaults.model.dModel)).") var dModel: Int?
    @Option(help: "Attention heads; must divide --d-model (default: \(Defaults.model.heads)).") var heads: Int?
    @Option(name: .customLong("ff-mult"), help: "Feed-forward width as a multiple of d (default: \(Defaults.model.ffMult)).") var ffMult: Int?
    @Option(name: .customLong("seq-len"), help: "Context length T in bytes (default: \(Defaults.model.seqLen)).") var seqLen: Int?
    @Option(help: ArgumentHelp("Residual variant (default: \(Defaults.model.variant.rawValue)): " + Variant.allCases.map {
        "\($0.rawValue): \($0.architecture.formula)"
    }.joined(separator: "; ") + ".", visibility: Defaults.takesVariant ? .default : .hidden)) var variant: Variant?
    @Option(help: "FFN activation: relu, gelu (tanh form) (default: \(Defaults.model.activation.rawValue)).") var activation: ActivationKind?

    /// The flags given, over `base` (the defaults, or a checkpoint's architecture).
    func apply(to c: inout ModelConfig) {
        if let layers { c.layers = layers }
        if let dModel { c.dModel = dModel }
        if let heads { c.heads = heads }
        if let ffMult { c.ffMult = ffMult }
        if let seqLen { c.seqLen = seqLen }
        if let variant { c.variant = variant }
        if let activation { c.activation = activation }
    }
}

/// Optimization and data flags; these may change when a run resumes.
struct TrainingOptions: ParsableArguments {
    private static var defaults: TrainingConfig { TrainingDefaults.config }

    @Option(name: .customLong("batch-size"), help: "Global batch in sequences per optimizer step, over all ranks and accumulation steps (default: \(defaults.batchSize)).") var batchSize: Int?
    @Option(name: .customLong("accum-steps"), help: "Gradient-accumulation micro-batches per rank and step (default: \(defaults.accumSteps)).") var accumSteps: Int?
    @Option(help: "Optimizer steps in all (default: \(defaults.steps)).") var steps: Int?
    @Option(help: "Peak learning rate (default: \(defaults.learningRate)).") var lr: Double?
    @Option(help: "Linear warm-up steps (default: \(defaults.warmup)).") var warmup: Int?
    @Option(help: "Learning-rate schedule: constant, warmup (then constant), cosine (warm-up, then cosine to lr/10) (default: \(defaults.schedule.rawValue)).") var schedule: ScheduleKind?
    @Option(help: "Optimizer: adamw, lamb (LAMB scales the AdamW update of each weight matrix and embedding by its trust ratio ‖w‖/‖update‖; α, biases and LayerNorm parameters are excluded from this layer adaptation and take the plain AdamW step) (default: \(defaults.optimizer.kind.rawValue)).") var optimizer: OptimizerKind?
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay on weight matrices only (default: \(defaults.optimizer.weightDecay)).") var weightDecay: Double?
    @Option(name: .customLong("alpha-lr-mult"), help: "Learning-rate multiplier for the α scalars (default: \(defaults.optimizer.alphaLearningRateMultiplier)).") var alphaLRMult: Double?
    @Option(help: "Global gradient-norm clip; 0 disables (default: \(defaults.clip)).") var clip: Double?
    @Option(help: "Dropout probability on the attention probabilities, after the FFN activation and on each sublayer's output before the residual add; masks depend on (seed, step, sequence, position) only, so ranks, workers and resume do not change them; evaluation never drops (default: \(defaults.dropout)).") var dropout: Double?
    @Option(help: "Seed of initialization and batch sampling (default: \(defaults.seed)).") var seed: UInt64?
    @Option(help: "Raw byte corpus such as enwik8, split 90%/5%/5% into train/valid/test (on the 100,000,000-byte enwik8 exactly the standard 90M/5M/5M). Default: data/enwik8 if present, else the built-in synthetic corpus.") var data: String?

    func apply(to c: inout TrainingConfig) {
        if let batchSize { c.batchSize = batchSize }
        if let accumSteps { c.accumSteps = accumSteps }
        if let steps { c.steps = steps }
        if let lr { c.learningRate = lr }
        if let warmup { c.warmup = warmup }
        if let schedule { c.schedule = schedule }
        if let optimizer { c.optimizer.kind = optimizer }
        if let weightDecay { c.optimizer.weightDecay = weightDecay }
        if let alphaLRMult { c.optimizer.alphaLearningRateMultiplier = alphaLRMult }
        if let clip { c.clip = clip }
        if let dropout { c.dropout = dropout }
        if let seed { c.seed = seed }
        if let data { c.data = data }
    }
}

/// Cadences and bookkeeping of a run; these may change when a run resumes.
struct RunOptions: ParsableArguments {
    private static var defaults: TrainingConfig { TrainingDefaults.config }

    @Option(name: .customLong("log-every"), help: "Console and metrics.jsonl line every this many steps (default: \(defaults.logEvery)).") var logEvery: Int?
    @Option(name: .customLong("eval-every"), help: "Validation bits/byte every this many steps; 0 disables (default: \(defaults.evalEvery)).") var evalEvery: Int?
    @Option(name: .customLong("eval-bytes"), help: "Bytes of the valid split scored by the periodic and final evaluation; 0 = whole split (default: \(defaults.evalBytes)).") var evalBytes: Int?
    @Option(name: .customLong("eval-context"), help: "Bytes by which consecutive evaluation windows of --seq-len bytes overlap, read as context only: each window after the first scores its last --seq-len − C bytes, every byte still scored once; 0 = non-overlapping windows (default: \(defaults.evalContext)).") var evalContext: Int?
    @Option(name: .customLong("check-every"), help: "Compare a checksum of the replicas' parameters every this many steps; 0 disables (default: \(defaults.checkEvery)).") var checkEvery: Int?
    @Option(name: .customLong("ckpt-every"), help: "Checkpoint every this many steps, and always at the end; 0 = only at the end (default: \(defaults.checkpointEvery)).") var ckptEvery: Int?
    @Option(help: "Checkpoints kept: the newest K plus the best by validation bits/byte (default: \(defaults.keep)).") var keep: Int?
    @Option(name: .customLong("diverge-patience"), help: "Stop as diverged when the loss stays above the first step's for this many consecutive steps; 0 = only on NaN/Inf (default: \(defaults.divergencePatience)).") var divergePatience: Int?
    @Flag(name: .customLong("no-overlap"), help: "Run the gradient all-reduce after backward instead of overlapping it (same result).") var noOverlap = false

    func apply(to c: inout TrainingConfig) {
        if noOverlap { c.overlapCommunication = false }
        if let logEvery { c.logEvery = logEvery }
        if let evalEvery { c.evalEvery = evalEvery }
        if let evalBytes { c.evalBytes = evalBytes }
        if let evalContext { c.evalContext = evalContext }
        if let checkEvery { c.checkEvery = checkEvery }
        if let ckptEvery { c.checkpointEvery = ckptEvery }
        if let keep { c.keep = keep }
        if let divergePatience { c.divergencePatience = divergePatience }
    }
}

/// `--collective-timeout`: when the collective watchdog gives up on a silent rank.
struct WatchdogOptions: ParsableArguments {
    @Option(name: .customLong("collective-timeout"), help: ArgumentHelp("Seconds a collective may make no progress before the ranks are probed; a rank that does not answer (stopped, hung, unreachable) aborts the job with exit status \(ExitStatus.stalled.rawValue) (default: \(Int(Watchdog.defaultTimeout)), or 20 × the slowest step if longer).", valueName: "seconds")) var collectiveTimeout: Double?

    func validate() throws {
        if let collectiveTimeout, !(collectiveTimeout > 0 && collectiveTimeout.isFinite) {
            throw ValidationError("--collective-timeout \(collectiveTimeout): must be a positive number of seconds")
        }
    }
}

/// `--threads`: the threads of each rank.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads of each rank (default: $OPENBLAS_NUM_THREADS, else cores on this node / ranks on this node). Training splits the rank's micro-batch over this many workers, each with single-threaded BLAS; a micro-batch smaller than that gets one worker per sequence, and a single sequence one worker with this many BLAS threads.") var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads \(threads): must be at least 1") }
    }

    /// The rank's threads. Passed to every trainer and evaluator rather than read back from
    /// `BLAS.threads`, which a trainer with several workers sets to 1 for them.
    func count(_ collective: Collective, debug: Bool = false) -> Int {
        guard !debug else { return 1 }
        if let threads { return threads }
        if let env = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(env), n > 0 { return n }
        return Swift.max(1, ProcessInfo.processInfo.activeProcessorCount / collective.ranksOnNode)
    }

    func configure(_ collective: Collective, debug: Bool) {
        BLAS.threads = count(collective, debug: debug)
    }
}
