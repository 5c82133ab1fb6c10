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
        public var run: String, status: TrainingSummary.Status
        public var stepsToTarget: Int?, tokensToTarget: Int?, secondsToTarget: Double?
        public var finalValidBpb: Double?, testBpb: Double?
        public var steps: Int, seconds: Double
    }

    /// Trains one run in `directory` and measures it against `target`.
    public static func train(_ run: Run, base: TrainingConfig, corpus: Corpus, collective: Collective,
                             directory: String, target: Double, log: @escaping (String) -> Void) throws -> Row {
        var config = base
        config.model.variant = run.variant
        if !run.warmup { config.warmup = 0 }
        if run.warmup && config.schedule == .constant { config.schedule = .warmup }
        log("== \(run.name): \(config.model.layers) layers, d=\(config.model.dModel), \(config.steps) steps, warm-up \(config.warmup)")
        let trainer = try Trainer(config: config, corpus: corpus, collective: collective)
        let training = try TrainingRun(trainer: trainer, runDirectory: directory, log: log)
        var clock = Clock()
        let summary = try training.run()
        let seconds = clock.lap()
        let reached = training.validationHistory.first { $0.bitsPerByte <= target }?.step
        var row = Row(run: run.name, status: summary.status, stepsToTarget: reached,
                      tokensToTarget: reached.map { $0 * config.batchSize * config.model.seqLen },
                      secondsToTarget: reached.map { seconds * Double($0) / Double(summary.step) },
                      finalValidBpb: summary.validBpb, testBpb: nil, steps: summary.step, seconds: seconds)
        if summary.status == .completed { row.testBpb = try training.evaluator.bitsPerByte(.test) }
        return row
    }

    /// compare.md: the set-up in a sentence, then a row per run.
    public static func table(_ rows: [Row], target: Double, base: TrainingConfig, corpus: Corpus, ranks: Int) -> String {
        let referenceSteps = rows.first { $0.run == reference.name }?.stepsToTarget
        func number(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "–" }
        let m = base.model
        var out = """
        Corpus \(corpus.name) (\(corpus.bytes.count) bytes, 90/5/5 split); \(m.layers) layers, d=\(m.dModel), \(m.heads) heads, \
        ff \(m.ffMult)d, T=\(m.seqLen); batch \(base.batchSize), \(base.steps) steps, \(base.optimizer.kind.rawValue) lr \(base.learningRate), \
        \(base.schedule.rawValue) schedule, warm-up \(base.warmup) steps where marked, eval context \(base.evalContext), \
        seed \(base.seed), \(ranks) rank(s).

        | run | steps to valid ≤ \(target) | tokens | wall time | speed-up vs \(reference.name) | final valid bpb | test bpb | status |
        |---|---|---|---|---|---|---|---|

        """
        for r in rows {
            var speedup = "–"
            if let referenceSteps, let steps = r.stepsToTarget { speedup = String(format: "%.2f×", Double(referenceSteps) / Double(steps)) }
            let status = r.status == .completed ? "completed" : "\(r.status.rawValue) at step \(r.steps)"
            out += "| \(r.run) | \(r.stepsToTarget.map(String.init) ?? "not reached") | \(r.tokensToTarget.map { $0.formatted() } ?? "–") | "
            out += "\(number(r.secondsToTarget, "%.0f s")) | \(speedup) | \(number(r.finalValidBpb)) | \(number(r.testBpb)) | \(status) |\n"
        }
        return out
    }
}
