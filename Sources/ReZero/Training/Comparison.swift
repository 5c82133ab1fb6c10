import Foundation

/// The paper's Table 3 at a chosen scale: every row trains on the same data, budget and optimizer
/// and differs only in its variant and whether it warms up. Each row is tuned on the same grid of
/// learning rates (and, for the rows that warm up, warm-up lengths) on the first seed; the chosen
/// setting then trains on every seed. The table reports steps to a target validation bits/byte,
/// and the speed-up at the best level each reference row reaches (`Speedup`).
public enum Comparison {
    /// One row: a variant, with or without the linear warm-up.
    public struct Run: Sendable, Equatable {
        public let variant: Variant
        public let warmup: Bool
        public var name: String { variant.rawValue + (warmup ? "+warmup" : "") }

        /// "VARIANT" or "VARIANT+warmup".
        public init(parsing text: String) throws(RezeroError) {
            let parts = text.split(separator: "+").map(String.init)
            guard let variant = parts.first.flatMap(Variant.init(rawValue:)), parts.count <= 2,
                  parts.count == 1 || parts[1] == "warmup" else {
                throw .usage("--runs: '\(text)' is not VARIANT or VARIANT+warmup (variants: \(Variant.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            self.init(variant: variant, warmup: parts.count == 2)
        }

        public init(variant: Variant, warmup: Bool) {
            self.variant = variant
            self.warmup = warmup
        }
    }

    /// Every variant's rows, as its `Architecture.comparisonRows` lists them.
    public static var defaultRuns: [Run] {
        Variant.allCases.flatMap { variant in
            variant.architecture.comparisonRows.map { Run(variant: variant, warmup: $0 == .warmup) }
        }
    }

    /// The paper's baseline, Post-LN with warm-up.
    public static let reference = Run(variant: .postnorm, warmup: true)
    /// The rows speed-ups are read against: the paper's baseline, and Pre-LN with warm-up, the
    /// baseline in use today.
    public static let references = [reference, Run(variant: .prenorm, warmup: true)]

    /// What one run of a row trains with besides the shared configuration.
    public struct Setting: Codable, Hashable, Sendable, CustomStringConvertible {
        public var learningRate: Double
        /// Linear warm-up steps; 0 for the rows without warm-up.
        public var warmup: Int
        public var seed: UInt64

        public init(learningRate: Double, warmup: Int, seed: UInt64) {
            self.learningRate = learningRate
            self.warmup = warmup
            self.seed = seed
        }

        /// Its directory under the row's: `lr-<rate>/seed-<seed>`, with `warmup-<steps>/` between
        /// for the rows that warm up.
        public func path(of run: Run) -> String {
            Comparison.learningRateDirectoryPrefix + "\(learningRate)/" + (run.warmup ? "warmup-\(warmup)/" : "") + "seed-\(seed)"
        }

        public var description: String { "lr \(learningRate)" + (warmup > 0 ? ", warm-up \(warmup)" : "") + ", seed \(seed)" }

        /// The same learning rate and warm-up on another seed.
        public func on(seed: UInt64) -> Setting { Setting(learningRate: learningRate, warmup: warmup, seed: seed) }
    }

    /// The path components of a run's directory that name its setting.
    public static let learningRateDirectoryPrefix = "lr-"
    public static let warmupDirectoryPrefix = "warmup-"
    public static let seedDirectoryPrefix = "seed-"

    /// What every row is tuned on, and the seeds its choice then trains on.
    public struct Grid: Sendable {
        public var learningRates: [Double]
        /// Warm-up lengths, for the rows that warm up.
        public var warmups: [Int]
        /// The first tunes the grid; every seed then trains at the chosen setting.
        public var seeds: [UInt64]

        public init(learningRates: [Double], warmups: [Int], seeds: [UInt64]) {
            self.learningRates = learningRates
            self.warmups = warmups
            self.seeds = seeds
        }

        /// The settings a row is tuned on, on the first seed.
        public func tuning(_ run: Run) -> [Setting] {
            learningRates.flatMap { lr in
                (run.warmup ? warmups : [0]).map { Setting(learningRate: lr, warmup: $0, seed: seeds[0]) }
            }
        }
    }

    /// The configuration a row trains with at a setting.
    public static func config(_ run: Run, _ setting: Setting, base: TrainingConfig) -> TrainingConfig {
        var config = base
        config.model.variant = run.variant
        config.learningRate = setting.learningRate
        config.seed = setting.seed
        config.warmup = run.warmup ? setting.warmup : 0
        if run.warmup && config.schedule == .constant { config.schedule = .warmup }
        return config
    }

    /// What decides a run's numbers: the configuration without the corpus's path (checked by its
    /// bytes instead) and without the bookkeeping that changes no result (log and checkpoint
    /// cadences, the replica check, overlap).
    static func experiment(_ config: TrainingConfig) -> TrainingConfig {
        var c = config
        let defaults = TrainingConfig()
        c.data = nil
        c.logEvery = defaults.logEvery
        c.checkEvery = defaults.checkEvery
        c.checkpointEvery = defaults.checkpointEvery
        c.keep = defaults.keep
        c.overlapCommunication = defaults.overlapCommunication
        return c
    }

    /// `result.json` in a finished run's directory: what the run directory's other files do not
    /// hold, so that a study reads back from its small files alone (no checkpoint needed).
    struct TrialRecord: Codable {
        var corpus: CorpusIdentity
        var testBpb: Double?
        var evalContext: Int
        var seconds: Double
        static let file = "result.json"
    }
}

/// Trains, or reads back, the runs of one depth of a comparison, each in its own directory:
/// `<directory>/<row>/<setting path>`. A run whose directory holds a finished run of the same
/// experiment on the same bytes is read back; one interrupted after a checkpoint resumes from it;
/// any other trains from step 0. So an interrupted study, a wider grid, more seeds or another
/// target only train what is missing.
public final class ComparisonStudy {
    let base: TrainingConfig
    let corpus: Corpus
    let collective: Collective
    let threads: Int
    let directory: String
    let grid: Comparison.Grid
    let target: Double
    /// False for `compare --no-train`: read back only, and list what is missing.
    let trains: Bool
    let log: (String) -> Void
    /// A stop signal ended a run (after its checkpoint): the study goes no further.
    public private(set) var stopped = false

    public init(base: TrainingConfig, corpus: Corpus, collective: Collective, threads: Int, directory: String,
                grid: Comparison.Grid, target: Double, trains: Bool, log: @escaping (String) -> Void) {
        self.base = base
        self.corpus = corpus
        self.collective = collective
        self.threads = threads
        self.directory = directory
        self.grid = grid
        self.target = target
        self.trains = trains
        self.log = log
    }

    /// Every row's grid on the first seed, then every row's choice on the other seeds; nil when
    /// a stop signal ended it.
    public func results(_ runs: [Comparison.Run]) throws -> Comparison.DepthResult? {
        var tuning: [[Comparison.Trial]] = [], missing: [[Comparison.Setting]] = []
        for run in runs {
            var trials: [Comparison.Trial] = [], absent: [Comparison.Setting] = []
            for setting in grid.tuning(run) {
                guard let trial = try trial(run, setting) else {
                    if stopped { return nil }
                    absent.append(setting)
                    continue
                }
                trials.append(trial)
            }
            tuning.append(trials)
            missing.append(absent)
        }
        var rows: [Comparison.RowResult] = []
        for (i, run) in runs.enumerated() {
            let chosen = Comparison.RowResult.choose(tuning[i], target: target)
            var seeds = chosen.map { [$0] } ?? []
            for seed in grid.seeds.dropFirst() {
                guard let setting = chosen?.setting.on(seed: seed) else { break }
                if let trial = try trial(run, setting) { seeds.append(trial) } else if stopped { return nil } else { missing[i].append(setting) }
            }
            rows.append(Comparison.RowResult(run: run.name, layers: base.model.layers, tuning: tuning[i], missing: missing[i],
                                             seeds: seeds, target: target))
        }
        return Comparison.DepthResult(layers: base.model.layers, rows: rows)
    }

    /// What rank 0 found in a run's directory, shared with every rank.
    private enum Found: Codable {
        case finished(Comparison.Trial)
        /// Stopped or killed after this checkpoint, `seconds` of training in (a run that ended
        /// without its result.json resumes from its final checkpoint: it only evaluates).
        case interrupted(checkpoint: String, seconds: Double)
        case nothing
    }

    /// The run of `run` at `setting`: read back, resumed, or trained; nil when it is missing and
    /// the study does not train, or when a stop signal ended it.
    func trial(_ run: Comparison.Run, _ setting: Comparison.Setting) throws -> Comparison.Trial? {
        let config = Comparison.config(run, setting, base: base)
        let place = directory + "/" + run.name + "/" + setting.path(of: run)
        let found: Found = collective.isRoot ? inspect(place, config: config, run: run, setting: setting) : .nothing
        let shared = try collective.broadcast(Array(JSONCoding.string(found).utf8))
        switch try JSONCoding.decoder().decode(Found.self, from: Data(shared)) {
        case .finished(let trial):
            log("== \(run.name), \(setting): read back from \(place) (\(trial.status.rawValue) at step \(trial.steps))")
            return trial
        case .interrupted(let checkpoint, let seconds):
            guard trains else { return missing(run, setting, place, "interrupted at \(checkpoint)") }
            log("== \(run.name), \(setting): resuming from \(checkpoint)")
            return try train(run, setting, config, place, resume: Checkpoint.load(path: checkpoint), secondsBefore: seconds)
        case .nothing:
            guard trains else { return missing(run, setting, place, "no finished run") }
            log("== \(run.name), \(setting): \(config.model.layers) layers, d=\(config.model.dModel), \(config.steps) steps")
            return try train(run, setting, config, place, resume: nil, secondsBefore: 0)
        }
    }

    private func missing(_ run: Comparison.Run, _ setting: Comparison.Setting, _ place: String, _ why: String) -> Comparison.Trial? {
        log("== \(run.name), \(setting): missing (\(why) in \(place)); not trained (--no-train)")
        return nil
    }

    private func train(_ run: Comparison.Run, _ setting: Comparison.Setting, _ config: TrainingConfig, _ place: String,
                       resume: Checkpoint.Loaded?, secondsBefore: Double) throws -> Comparison.Trial? {
        if collective.isRoot {
            // A stale ending must not be read back as this run's, should it be interrupted.
            for file in ["summary.json", Comparison.TrialRecord.file] { try? FileManager.default.removeItem(atPath: place + "/" + file) }
        }
        let trainer = try Trainer(config: config, corpus: corpus, collective: collective, threads: threads, resume: resume)
        let training = try TrainingRun(trainer: trainer, runDirectory: place, resumedAt: resume?.state.step, log: log)
        training.resumeCommand = "the same rezero compare command"
        var clock = Clock()
        let summary = try training.run()
        let seconds = secondsBefore + clock.lap()
        guard summary.status != .stopped else {
            stopped = true
            return nil
        }
        var trial = Comparison.Trial(run: run.name, layers: config.model.layers, setting: setting, status: summary.status,
                                     steps: summary.step, seconds: seconds, validation: [], finalValidBpb: summary.validBpb,
                                     testBpb: nil, directory: place)
        if collective.isRoot, let records = try? MetricsLog.read(place + "/metrics.jsonl") {
            trial.validation = Self.validation(records)
        }
        if summary.status == .completed { trial.testBpb = try training.evaluator.bitsPerByte(.test) }
        try record(trial, config: config, in: place)
        return trial
    }

    /// Writes result.json (rank 0).
    private func record(_ trial: Comparison.Trial, config: TrainingConfig, in place: String) throws {
        guard collective.isRoot else { return }
        let record = Comparison.TrialRecord(corpus: corpus.identity, testBpb: trial.testBpb, evalContext: config.evalContext,
                                            seconds: trial.seconds)
        try AtomicFile.write(Data((JSONCoding.string(record, pretty: true) + "\n").utf8), to: place + "/" + Comparison.TrialRecord.file)
    }

    private static func validation(_ records: [MetricsRecord]) -> [Comparison.Evaluation] {
        records.compactMap { r in r.validBpb.map { Comparison.Evaluation(step: r.step, bpb: $0) } }
    }

    /// Rank 0's reading of a run directory.
    private func inspect(_ place: String, config: TrainingConfig, run: Comparison.Run, setting: Comparison.Setting) -> Found {
        let manager = FileManager.default
        guard let stored = try? String(contentsOfFile: place + "/config.json", encoding: .utf8),
              let storedConfig = try? TrainingConfig.decode(json: stored),
              Comparison.experiment(storedConfig) == Comparison.experiment(config) else { return .nothing }
        let records = (try? MetricsLog.read(place + "/metrics.jsonl")) ?? []
        if let data = manager.contents(atPath: place + "/summary.json"),
           let summary = try? JSONCoding.decoder().decode(TrainingSummary.self, from: data), summary.status != .stopped,
           let data = manager.contents(atPath: place + "/" + Comparison.TrialRecord.file),
           let record = try? JSONCoding.decoder().decode(Comparison.TrialRecord.self, from: data),
           record.corpus.sameBytes(as: corpus.identity) {
            return .finished(Comparison.Trial(run: run.name, layers: config.model.layers, setting: setting, status: summary.status,
                                              steps: summary.step, seconds: record.seconds, validation: Self.validation(records),
                                              finalValidBpb: summary.validBpb, testBpb: record.testBpb, directory: place))
        }
        guard let checkpoint = try? CheckpointDirectory(place).latestValid(warn: { _ in }),
              Comparison.experiment(checkpoint.config) == Comparison.experiment(config),
              checkpoint.corpus?.sameBytes(as: corpus.identity) == true else { return .nothing }
        let before = records.last { $0.step <= checkpoint.state.step && $0.elapsedS != nil }?.elapsedS ?? 0
        return .interrupted(checkpoint: checkpoint.path, seconds: before)
    }
}
