import ArgumentParser
import Foundation
import ReZero

/// The paper's Table 3 at a chosen scale: the same data, seed, budget and optimizer for each
/// residual variant, reporting steps to a target validation bits/byte.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train several residual variants on the same budget and tabulate convergence (the paper's Table 3).",
        discussion: """
        Each run is VARIANT or VARIANT+warmup (linear warm-up over --warmup steps; without it, no warm-up). Runs go one \
        after another, each in its own directory under --out, single-process or under mpirun. Writes compare.md \
        (the table) and compare.json. A run whose loss becomes NaN/Inf, or stays above its first loss for \
        --diverge-patience steps, is stopped and reported as diverged.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cadence: RunOptions
    @OptionGroup var threads: ThreadOptions
    @Option(help: "Comma-separated runs (default: postnorm+warmup,postnorm,prenorm+warmup,rezero-alpha1,rezero).")
    var runs: String = "postnorm+warmup,postnorm,prenorm+warmup,rezero-alpha1,rezero"
    @Option(help: "Target validation bits/byte for the steps-to-target column (default: 2.0).") var target: Double = 2.0
    @Option(help: "Output directory (default: runs/compare-<timestamp>).") var out: String?

    struct Row: Codable {
        var run: String, status: String
        var stepsToTarget: Int?, tokensToTarget: Int?, secondsToTarget: Double?
        var finalValid: Double?, test: Double?, steps: Int, seconds: Double
    }

    func run() throws {
        guard model.variant == nil else { fail("--variant: compare takes its variants from --runs") }
        let specs: [(name: String, variant: Variant, warmup: Bool)] = runs.split(separator: ",").map { item in
            let parts = item.split(separator: "+").map(String.init)
            guard let variant = Variant(rawValue: parts[0]), parts.count <= 2, parts.count == 1 || parts[1] == "warmup" else {
                fail("--runs: '\(item)' is not VARIANT or VARIANT+warmup (variants: \(Variant.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return (String(item), variant, parts.count == 2)
        }
        guard !specs.isEmpty else { fail("--runs: no runs given") }
        let collective: Collective
        do { collective = try Collective(mpi: ()) } catch { fail("cannot start MPI: \(error)") }
        threads.configure(collective)
        let say: (String) -> Void = { if collective.isRoot { print($0) } }
        let directory = out ?? "runs/compare-" + Train.timestamp()
        var base = TrainingConfig()
        model.apply(to: &base.model)
        training.apply(to: &base)
        cadence.apply(to: &base)
        do {
            let corpus = try Corpus.resolve(path: base.data)
            if corpus.entropyRate == nil { base.data = corpus.name }
            var rows: [Row] = []
            for spec in specs {
                var config = base
                config.model.variant = spec.variant
                if !spec.warmup { config.warmup = 0 }
                if spec.warmup && config.schedule == .constant { config.schedule = .warmup }
                say("== \(spec.name): \(config.model.layers) layers, d=\(config.model.dModel), \(config.steps) steps, warm-up \(config.warmup)")
                let trainer = try Trainer(config: config, corpus: corpus, collective: collective,
                                          runDirectory: directory + "/" + spec.name, log: say)
                let start = Date()
                let summary = try trainer.run()
                let seconds = Date().timeIntervalSince(start)
                let reached = trainer.validationHistory.first { $0.bitsPerByte <= target }?.step
                var row = Row(run: spec.name, status: summary.status.rawValue, stepsToTarget: reached,
                              tokensToTarget: reached.map { $0 * config.batchSize * config.model.seqLen },
                              secondsToTarget: reached.map { seconds * Double($0) / Double(summary.step) },
                              finalValid: summary.validBitsPerByte, test: nil, steps: summary.step, seconds: seconds)
                if summary.status == .completed {
                    row.test = try Evaluator(model: trainer.model, corpus: corpus, collective: collective,
                                             batch: config.batchSize / collective.size).bitsPerByte(.test)
                }
                rows.append(row)
            }
            if collective.isRoot {
                let table = Self.table(rows, target: target, base: base, corpus: corpus, ranks: collective.size)
                print(table)
                try AtomicFile.write(Data(table.utf8), to: directory + "/compare.md")
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(try encoder.encode(rows), to: directory + "/compare.json")
                print("wrote \(directory)/compare.md and compare.json")
            }
            collective.finalize()
        } catch {
            if collective.size > 1 { collective.abort("error: \(error)") }
            fail("\(error)")
        }
    }

    static func table(_ rows: [Row], target: Double, base: TrainingConfig, corpus: Corpus, ranks: Int) -> String {
        let reference = rows.first { $0.run == "postnorm+warmup" }?.stepsToTarget
        func number(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "–" }
        let m = base.model
        var out = """
        Corpus \(corpus.name) (\(corpus.bytes.count) bytes, 90/5/5 split); \(m.layers) layers, d=\(m.dModel), \(m.heads) heads, \
        ff \(m.ffMult)d, T=\(m.seqLen); batch \(base.batchSize), \(base.steps) steps, \(base.optimizer.kind.rawValue) lr \(base.learningRate), \
        \(base.schedule.rawValue) schedule, warm-up \(base.warmup) steps where marked, seed \(base.seed), \(ranks) rank(s).

        | run | steps to valid ≤ \(target) | tokens | wall time | speed-up vs postnorm+warmup | final valid bpb | test bpb | status |
        |---|---|---|---|---|---|---|---|

        """
        for r in rows {
            let speedup = both(reference, r.stepsToTarget).map { String(format: "%.2f×", Double($0) / Double($1)) } ?? "–"
            let status = r.status == "completed" ? "completed" : "\(r.status) at step \(r.steps)"
            out += "| \(r.run) | \(r.stepsToTarget.map(String.init) ?? "not reached") | \(r.tokensToTarget.map { $0.formatted() } ?? "–") | "
            out += "\(number(r.secondsToTarget, "%.0f s")) | \(speedup) | \(number(r.finalValid)) | \(number(r.test)) | \(status) |\n"
        }
        return out
    }
}
