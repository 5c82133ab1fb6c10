import Foundation

/// The paper's Table 3 at a chosen scale: every run trains on the same data, seed, budget and
/// optimizer and differs only in its variant and whether it warms up; the table reports steps to
/// a target validation bits/byte against Post-LN with warm-up, the paper's reference row.
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

    public static let reference = Run(variant: .postnorm, warmup: true)

    public struct Row: Codable, Sendable {
        public var run: String, learningRate: Double, status: TrainingSummary.Status
        public var stepsToTarget: Int?, tokensToTarget: Int?, secondsToTarget: Double?
        public var finalValidBpb: Double?, testBpb: Double?
        public var steps: Int, seconds: Double
        /// The row of its run that the table shows: the best learning rate of the grid.
        public var chosen = false

        /// Better: reaches the target in fewer steps; then a lower final validation bits/byte; a
        /// diverged run only beats another diverged run, by lasting longer.
        static func isBetter(_ a: Row, than b: Row) -> Bool {
            switch (a.stepsToTarget, b.stepsToTarget) {
            case let (x?, y?) where x != y: return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: break
            }
            switch (a.finalValidBpb, b.finalValidBpb) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return a.steps > b.steps
            }
        }
    }

    /// The directory of one learning rate of a grid, under the run's directory: `lr-<rate>`.
    public static let learningRateDirectoryPrefix = "lr-"

    /// Trains `run` at every learning rate of `grid` (each in its own directory under `directory`
    /// when there are several) and marks the best; returns all of them, the chosen one included.
    public static func train(_ run: Run, learningRates grid: [Double], base: TrainingConfig, corpus: Corpus,
                             collective: Collective, threads: Int, directory: String, target: Double,
                             log: @escaping (String) -> Void) throws -> [Row] {
        var rows = try grid.map { lr in
            var config = base
            config.learningRate = lr
            let place = grid.count == 1 ? directory : directory + "/" + learningRateDirectoryPrefix + "\(lr)"
            return try train(run, base: config, corpus: corpus, collective: collective, threads: threads, directory: place,
                             target: target, log: log)
        }
        if let best = rows.indices.min(by: { Row.isBetter(rows[$0], than: rows[$1]) }) { rows[best].chosen = true }
        return rows
    }

    /// Trains one run in `directory` and measures it against `target` — or, when the directory
    /// already holds a finished run of exactly this configuration, reads it back, so that an
    /// interrupted comparison, a wider learning-rate grid or another target only trains what is
    /// missing.
    public static func train(_ run: Run, base: TrainingConfig, corpus: Corpus, collective: Collective, threads: Int,
                             directory: String, target: Double, log: @escaping (String) -> Void) throws -> Row {
        var config = base
        config.model.variant = run.variant
        if !run.warmup { config.warmup = 0 }
        if run.warmup && config.schedule == .constant { config.schedule = .warmup }
        let batch = config.batchSize / collective.size
        if let finished = try finishedRun(config, directory: directory, collective: collective) {
            log("== \(run.name), lr \(config.learningRate): read back from \(directory) (\(finished.summary.status.rawValue) at step \(finished.summary.step))")
            var testBpb: Double?
            if finished.summary.status == .completed, let checkpoint = finished.summary.checkpoint {
                testBpb = try Evaluator(model: Checkpoint.load(path: checkpoint).model(batch: batch), corpus: corpus, collective: collective,
                                        batch: batch, context: config.evalContext, threads: threads).bitsPerByte(.test)
            }
            return row(run, config, finished.summary, history: finished.validation, seconds: finished.seconds,
                       target: target, testBpb: testBpb)
        }
        log("== \(run.name), lr \(config.learningRate): \(config.model.layers) layers, d=\(config.model.dModel), \(config.steps) steps, warm-up \(config.warmup)")
        let trainer = try Trainer(config: config, corpus: corpus, collective: collective, threads: threads)
        let training = try TrainingRun(trainer: trainer, runDirectory: directory, log: log)
        var clock = Clock()
        let summary = try training.run()
        let seconds = clock.lap()
        let testBpb = summary.status == .completed ? try training.evaluator.bitsPerByte(.test) : nil
        return row(run, config, summary, history: training.validationHistory, seconds: seconds, target: target, testBpb: testBpb)
    }

    private static func row(_ run: Run, _ config: TrainingConfig, _ summary: TrainingSummary,
                            history: [(step: Int, bitsPerByte: Double)], seconds: Double, target: Double, testBpb: Double?) -> Row {
        let reached = history.first { $0.bitsPerByte <= target }?.step
        return Row(run: run.name, learningRate: config.learningRate, status: summary.status, stepsToTarget: reached,
                   tokensToTarget: reached.map { $0 * config.batchSize * config.model.seqLen },
                   secondsToTarget: reached.map { seconds * Double($0) / Double(Swift.max(summary.step, 1)) },
                   finalValidBpb: summary.validBpb, testBpb: testBpb, steps: summary.step, seconds: seconds)
    }

    /// A finished run of `config` in `directory`, as rank 0 reads it: its summary (on every rank),
    /// its evaluations and its training seconds (on rank 0, which writes the table).
    private static func finishedRun(_ config: TrainingConfig, directory: String, collective: Collective) throws
        -> (summary: TrainingSummary, validation: [(step: Int, bitsPerByte: Double)], seconds: Double)? {
        var found: (summary: TrainingSummary, validation: [(step: Int, bitsPerByte: Double)], seconds: Double)?
        if collective.isRoot,
           let stored = try? String(contentsOfFile: directory + "/config.json", encoding: .utf8),
           (try? TrainingConfig.decode(json: stored)) == config,
           let data = FileManager.default.contents(atPath: directory + "/summary.json"),
           let summary = try? JSONCoding.decoder().decode(TrainingSummary.self, from: data),
           summary.status != .stopped,
           let records = try? MetricsLog.read(directory + "/metrics.jsonl") {
            found = (summary, records.compactMap { r in r.validBpb.map { (r.step, $0) } },
                     records.last { $0.elapsedS != nil }?.elapsedS ?? 0)
        }
        // Every rank needs the summary (its checkpoint is evaluated on the test split by all of them).
        let shared = try collective.broadcast(found.map { Array(JSONCoding.string($0.summary).utf8) } ?? [])
        guard !shared.isEmpty else { return nil }
        if let found { return found }
        return (try JSONCoding.decoder().decode(TrainingSummary.self, from: Data(shared)), [], 0)
    }

    /// compare.md: the set-up in a sentence, a row per run at its chosen learning rate, then every
    /// run at every learning rate of the grid.
    public static func table(_ all: [Row], target: Double, base: TrainingConfig, corpus: Corpus, ranks: Int) -> String {
        let rows = all.filter(\.chosen)
        let grid = Array(Set(all.map(\.learningRate))).sorted()
        let referenceSteps = rows.first { $0.run == reference.name }?.stepsToTarget
        func number(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "–" }
        let m = base.model
        var out = """
        Corpus \(corpus.name) (\(corpus.bytes.count) bytes, 90/5/5 split); \(m.layers) layers, d=\(m.dModel), \(m.heads) heads, \
        ff \(m.ffMult)d, T=\(m.seqLen), \(m.activation.rawValue); batch \(base.batchSize), \(base.steps) steps, \
        \(base.optimizer.kind.rawValue) at the best learning rate of \(grid.map { "\($0)" }.joined(separator: ", ")) per run, \
        \(base.schedule.rawValue) schedule, warm-up \(base.warmup) steps where marked, dropout \(base.dropout), \
        eval context \(base.evalContext), seed \(base.seed), \(ranks) rank(s).

        | run | lr | steps to valid ≤ \(target) | tokens | wall time | speed-up vs \(reference.name) | final valid bpb | test bpb | status |
        |---|---|---|---|---|---|---|---|---|

        """
        for r in rows {
            var speedup = "–"
            if let referenceSteps, let steps = r.stepsToTarget { speedup = String(format: "%.2f×", Double(referenceSteps) / Double(steps)) }
            let status = r.status == .completed ? "completed" : "\(r.status.rawValue) at step \(r.steps)"
            out += "| \(r.run) | \(r.learningRate) | \(r.stepsToTarget.map(String.init) ?? "not reached") | \(r.tokensToTarget.map { $0.formatted() } ?? "–") | "
            out += "\(number(r.secondsToTarget, "%.0f s")) | \(speedup) | \(number(r.finalValidBpb)) | \(number(r.testBpb)) | \(status) |\n"
        }
        guard grid.count > 1 else { return out }
        out += "\nEvery learning rate (final valid bpb; steps to \(target) in brackets; * the chosen one):\n\n"
        out += "| run | " + grid.map { "lr \($0)" }.joined(separator: " | ") + " |\n|---|" + grid.map { _ in "---|" }.joined() + "\n"
        for run in rows.map(\.run) {
            let cells = grid.map { lr -> String in
                guard let r = all.first(where: { $0.run == run && $0.learningRate == lr }) else { return "–" }
                let result = r.status == .diverged ? "diverged at \(r.steps)" : number(r.finalValidBpb)
                return result + (r.stepsToTarget.map { " (\($0))" } ?? "") + (r.chosen ? " *" : "")
            }
            out += "| \(run) | " + cells.joined(separator: " | ") + " |\n"
        }
        return out
    }
}
