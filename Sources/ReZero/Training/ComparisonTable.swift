import Foundation

/// compare.md: what was trained and how it was tuned in a paragraph, then per depth a row per
/// run at its chosen setting (means and spreads over the seeds), every seed, every grid point;
/// with several depths, a table across depths first.
extension Comparison {
    public struct TableContext: Sendable {
        public var base: TrainingConfig
        public var grid: Grid
        public var target: Double
        public var corpus: String
        public var corpusBytes: Int
        public var ranks: Int
        public var threads: Int

        public init(base: TrainingConfig, grid: Grid, target: Double, corpus: String, corpusBytes: Int, ranks: Int, threads: Int) {
            self.base = base
            self.grid = grid
            self.target = target
            self.corpus = corpus
            self.corpusBytes = corpusBytes
            self.ranks = ranks
            self.threads = threads
        }
    }

    public static func table(_ depths: [DepthResult], _ context: TableContext) -> String {
        var out = setup(depths, context) + "\n"
        if depths.count > 1 { out += "\n" + depthTable(depths, context) }
        for depth in depths {
            if depths.count > 1 { out += "\n### \(depth.layers) layers\n" }
            out += "\n" + rowTable(depth, context)
            out += "\n" + seedTable(depth, context)
            out += "\n" + gridTable(depth, context)
        }
        return out
    }

    static func number(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "–" }

    /// "2.673 ± 0.012" (one seed: the value alone).
    static func meanAndDeviation(_ spread: Spread?) -> String {
        guard let spread else { return "–" }
        return spread.count > 1 ? String(format: "%.3f ± %.3f", spread.mean, spread.sd) : String(format: "%.3f", spread.mean)
    }

    /// "750 (700–800), 3/3"
    static func stepsCell(_ row: RowResult) -> String {
        guard let steps = row.stepsToTarget else { return row.seeds.isEmpty ? "–" : "not reached (0/\(row.seeds.count))" }
        let range = steps.min < steps.max ? String(format: " (%.0f–%.0f)", steps.min, steps.max) : ""
        return String(format: "%.0f", steps.mean) + range + ", \(row.reachedTarget)/\(row.seeds.count)"
    }

    /// "1.85× (1.70–2.00), 3/3"; "never: best 3.412 > 3.360 (0/3)".
    static func speedupCell(_ row: RowResult, against reference: String) -> String {
        guard let summary = row.speedups.first(where: { $0.reference == reference }), !summary.speedups.isEmpty else { return "–" }
        let paired = summary.speedups.count
        guard let ratio = summary.ratio else {
            let bests = summary.speedups.compactMap { s -> (Double?, Double)? in
                if case let .neverReached(level, best) = s { return (best, level) }
                return nil
            }
            let worstGap = bests.map { best, level in "best \(number(best)) > \(number(level))" }.first ?? ""
            return "never: \(worstGap) (0/\(paired))"
        }
        let range = ratio.min < ratio.max ? String(format: " (%.2f–%.2f)", ratio.min, ratio.max) : ""
        return String(format: "%.2f×", ratio.mean) + range + ", \(summary.reached)/\(paired)"
    }

    static func settingCells(_ row: RowResult) -> (String, String) {
        guard let chosen = row.chosen else { return ("–", "–") }
        return ("\(chosen.learningRate)", row.run.hasSuffix("+warmup") ? "\(chosen.warmup)" : "–")
    }

    static func statusCell(_ row: RowResult) -> String {
        let diverged = row.diverged
        guard !diverged.isEmpty else { return row.seeds.isEmpty ? "not run" : "completed" }
        return "diverged (\(diverged.count)/\(row.seeds.count)) at step " + diverged.map { "\($0.steps)" }.joined(separator: ", ")
    }

    static func setup(_ depths: [DepthResult], _ c: TableContext) -> String {
        let m = c.base.model, b = c.base
        let layers = depths.map { "\($0.layers)" }.joined(separator: ", ")
        let runs = depths.map(\.runCount).reduce(0, +), seconds = depths.map(\.seconds).reduce(0, +)
        let seeds = c.grid.seeds.map(String.init).joined(separator: ", ")
        return """
        Corpus \(c.corpus) (\(c.corpusBytes) bytes, 90/5/5 split); \(layers) layers, d=\(m.dModel), \(m.heads) heads, \
        ff \(m.ffMult)d, T=\(m.seqLen), \(m.activation.rawValue), dropout \(b.dropout); batch \(b.batchSize), \(b.steps) steps, \
        \(b.optimizer.kind.rawValue), \(b.schedule.rawValue) schedule. Every row is tuned on seed \(c.grid.seeds[0]) over \
        learning rates \(c.grid.learningRates.map { "\($0)" }.joined(separator: ", ")) and, for the rows that warm up, \
        warm-ups of \(c.grid.warmups.map(String.init).joined(separator: ", ")) steps; the setting that reaches validation \
        ≤ \(c.target) bits/byte in the fewest steps (then: the lowest final validation bits/byte) is then trained on seeds \
        \(seeds) (a seed sets the initialization, the batches and the dropout masks). Means and spreads are over those seeds. \
        Validation every \(b.evalEvery) steps over the first \(b.evalBytes) bytes of the valid split; test over the whole \
        test split; both with \(b.evalContext) bytes of context per window. Speed-up vs a reference row: the steps the \
        reference needs to first reach its own best validation bits/byte, divided by the steps this row needs to reach that \
        value, seed by seed. Compute: \(runs) runs, \(Clock.format(seconds)) of training on \(c.ranks) rank(s) × \
        \(c.threads) thread(s).
        """
    }

    /// A row's chosen setting and results, the cells of both the depth's table and the table across depths.
    static func resultCells(_ row: RowResult) -> [String] {
        let (lr, warmup) = settingCells(row)
        return [row.run, lr, warmup, stepsCell(row)] + Comparison.references.map { speedupCell(row, against: $0.name) }
            + [meanAndDeviation(row.finalValid), meanAndDeviation(row.test), statusCell(row)]
    }

    static func resultHeader(_ c: TableContext) -> [String] {
        ["run", "lr", "warm-up", "steps to valid ≤ \(c.target) (min–max), seeds reached"]
            + Comparison.references.map { "speed-up vs \($0.name) at its best" } + ["final valid bpb", "test bpb", "status"]
    }

    static func markdown(_ header: [String], _ rows: [[String]]) -> String {
        ([header, header.map { _ in "---" }] + rows).map { "| " + $0.joined(separator: " | ") + " |\n" }.joined()
    }

    static func rowTable(_ depth: DepthResult, _ c: TableContext) -> String {
        markdown(resultHeader(c), depth.rows.map(resultCells))
    }

    /// Each seed's final validation bits/byte and steps to the target, at the chosen setting.
    static func seedTable(_ depth: DepthResult, _ c: TableContext) -> String {
        let rows = depth.rows.map { row in
            [row.run] + c.grid.seeds.map { seed in row.seeds.first { $0.setting.seed == seed }.map { trialCell($0, target: c.target) } ?? "–" }
        }
        return "Every seed at the chosen setting (final valid bpb; steps to \(c.target) in brackets):\n\n"
            + markdown(["run"] + c.grid.seeds.map { "seed \($0)" }, rows)
    }

    static func trialCell(_ trial: Trial, target: Double) -> String {
        let result = trial.status == .diverged ? "diverged at \(trial.steps)" : number(trial.finalValidBpb)
        return result + (trial.steps(toReach: target).map { " (\($0))" } ?? "")
    }

    /// Every grid point on the tuning seed, a line per row and warm-up.
    static func gridTable(_ depth: DepthResult, _ c: TableContext) -> String {
        let rates = c.grid.learningRates
        let rows = depth.rows.flatMap { row in
            (row.run.hasSuffix("+warmup") ? c.grid.warmups : [0]).map { warmup in
                [row.run, warmup > 0 ? "\(warmup)" : "–"] + rates.map { lr in
                    guard let trial = row.tuning.first(where: { $0.setting.learningRate == lr && $0.setting.warmup == warmup }) else { return "–" }
                    return trialCell(trial, target: c.target) + (trial.setting == row.chosen ? " *" : "")
                }
            }
        }
        return "Every setting on seed \(c.grid.seeds[0]) (final valid bpb; steps to \(c.target) in brackets; * the chosen one; – not run):\n\n"
            + markdown(["run", "warm-up"] + rates.map { "lr \($0)" }, rows)
    }

    /// Each row's chosen setting and results at every depth where it has runs.
    static func depthTable(_ depths: [DepthResult], _ c: TableContext) -> String {
        markdown(["layers"] + resultHeader(c), depths.flatMap { depth in
            depth.rows.filter { !$0.tuning.isEmpty }.map { ["\(depth.layers)"] + resultCells($0) }
        })
    }
}
