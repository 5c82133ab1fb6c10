import ArgumentParser
import Foundation
import ReZero

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train several residual variants on the same budget and tabulate convergence (the paper's Table 3).",
        discussion: """
        Each run is VARIANT or VARIANT+warmup (linear warm-up over --warmup steps; without it, no warm-up). Runs go one \
        after another, each in its own directory under --out, single-process or under mpirun. Writes compare.md \
        (the table) and compare.json. A run whose loss or gradient becomes NaN/Inf, or whose loss stays above its \
        first for --diverge-patience steps, is stopped and reported as diverged.
        """)

    @OptionGroup var model: ModelOptions<CompareDefaults>
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cadence: RunOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var watchdog: WatchdogOptions
    @Option(help: "Comma-separated runs.") var runs: String = Comparison.defaultRuns.map(\.name).joined(separator: ",")
    @Option(help: "Target validation bits/byte for the steps-to-target column.") var target: Double = 2.0
    @Option(name: .customLong("lr-grid"), help: "Comma-separated learning rates: every run trains at each and the table shows its best (fewest steps to --target, then lowest final validation bits/byte), so that every row is tuned on the same grid (default: --lr alone).")
    var lrGrid: String?
    @Option(help: "Output directory (default: runs/compare-<timestamp>).") var out: String?

    func validate() throws {
        guard model.variant == nil else { throw ValidationError("--variant: compare takes its variants from --runs") }
        guard !runs.isEmpty else { throw ValidationError("--runs: no runs given") }
        if let lrGrid {
            for item in lrGrid.split(separator: ",", omittingEmptySubsequences: false) {
                guard let lr = Double(item), lr > 0, lr.isFinite else {
                    throw ValidationError("--lr-grid: '\(item)' is not a positive learning rate")
                }
            }
        }
    }

    func run() throws {
        runJob(threads: threads, collectiveTimeout: watchdog.collectiveTimeout) { collective in
            let say = rootPrinter(collective)
            let specs = try runs.split(separator: ",", omittingEmptySubsequences: false).map {
                try Comparison.Run(parsing: String($0))
            }
            let directory = out ?? "runs/compare-" + Train.timestamp()
            var base = TrainingConfig()
            model.apply(to: &base.model)
            training.apply(to: &base)
            cadence.apply(to: &base)
            let corpus = try Corpus.forNewRun(path: base.data)
            if corpus.entropyRate == nil { base.data = corpus.name }
            let grid = lrGrid.map { $0.split(separator: ",").compactMap { Double($0) } } ?? [base.learningRate]
            let rows = try specs.flatMap { run in
                try Comparison.train(run, learningRates: grid, base: base, corpus: corpus, collective: collective,
                                     threads: threads.count(collective), directory: directory + "/" + run.name,
                                     target: target, log: say)
            }
            if collective.isRoot {
                let table = Comparison.table(rows, target: target, base: base, corpus: corpus, ranks: collective.size)
                print(table)
                try AtomicFile.write(Data(table.utf8), to: directory + "/compare.md")
                try AtomicFile.write(Data(JSONCoding.string(rows, pretty: true).utf8), to: directory + "/compare.json")
                print("wrote \(directory)/compare.md and compare.json")
            }
            return .success
        }
    }
}
