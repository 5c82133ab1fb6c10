import ArgumentParser
import Foundation
import ReZero
import ReZeroCharts

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train several residual variants on the same budget and tabulate convergence (the paper's Table 3).",
        discussion: """
        Each run is VARIANT or VARIANT+warmup (linear warm-up; without it, no warm-up). Every run is tuned on the same \
        grid (--lr-grid, and --warmup-grid for the runs that warm up) on the first of --seeds; its best setting (fewest \
        steps to --target, then the lowest final validation bits/byte) then trains on every seed. With --depths, all of \
        it at each depth. Runs go one after another, single-process or under mpirun, each in its own directory: \
        OUT[/L<layers>]/<run>/lr-<rate>[/warmup-<steps>]/seed-<seed>. A directory that holds a finished run of the same \
        setting is read back (from config.json, metrics.jsonl, summary.json and result.json: no checkpoint needed), an \
        interrupted one resumes from its checkpoint, so the same command continues a study or extends its grids. \
        SIGTERM, SIGINT, SIGUSR1 or SIGUSR2 stops the run in progress after a checkpoint. Writes compare.md, \
        compare.json and the charts (valid_bpb.svg, alpha.svg; with several depths depth_steps.svg, depth_valid.svg). \
        A run whose loss or gradient becomes NaN/Inf, or whose loss stays above its first for --diverge-patience steps, \
        is stopped and reported as diverged.
        """)

    @OptionGroup var model: ModelOptions<CompareDefaults>
    @OptionGroup var training: TrainingOptions
    @OptionGroup var cadence: RunOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var watchdog: WatchdogOptions
    @Option(help: "Comma-separated runs (default: every row of the paper's Table 3).") var runs: String = Comparison.defaultRuns.map(\.name).joined(separator: ",")
    @Option(help: "Target validation bits/byte for the steps-to-target column and the choice of each run's setting (default: 2.0).") var target: Double = 2.0
    @Option(name: .customLong("lr-grid"), help: "Comma-separated learning rates every run is tuned on (default: --lr alone).")
    var lrGrid: String?
    @Option(name: .customLong("warmup-grid"), help: "Comma-separated warm-up lengths in steps the runs that warm up are tuned on, together with --lr-grid (default: --warmup alone).")
    var warmupGrid: String?
    @Option(help: "Comma-separated seeds: the first tunes the grid, then the chosen setting trains on every one; a seed sets the initialization, the batches and the dropout masks (default: --seed alone).")
    var seeds: String?
    @Option(help: "Comma-separated layer counts: the whole comparison at each, in OUT/L<layers> (default: --layers alone, in OUT).")
    var depths: String?
    @Flag(name: .customLong("no-train"), help: "Train nothing: tabulate and chart the finished runs under --out, listing the missing ones.")
    var noTrain = false
    @Option(help: "Output directory (default: runs/compare-<timestamp>).") var out: String?

    func validate() throws {
        guard model.variant == nil else { throw ValidationError("--variant: compare takes its variants from --runs") }
        guard !runs.isEmpty else { throw ValidationError("--runs: no runs given") }
        guard training.seed == nil || seeds == nil else { throw ValidationError("--seed and --seeds: give one of them") }
        guard model.layers == nil || depths == nil else { throw ValidationError("--layers and --depths: give one of them") }
        _ = try list("--lr-grid", lrGrid) { Double($0).flatMap { $0 > 0 && $0.isFinite ? $0 : nil } }
        _ = try list("--warmup-grid", warmupGrid) { Int($0).flatMap { $0 >= 0 ? $0 : nil } }
        _ = try list("--seeds", seeds) { UInt64($0) }
        _ = try list("--depths", depths) { Int($0).flatMap { $0 >= 1 ? $0 : nil } }
    }

    /// The values of a comma-separated flag, each parsed by `parse` (nil: not a valid value);
    /// nil when the flag is absent. A repeated value is an error: it would train twice.
    private func list<T: Hashable>(_ flag: String, _ text: String?, _ parse: (String) -> T?) throws -> [T]? {
        guard let text else { return nil }
        let what = ["--lr-grid": "a positive learning rate", "--warmup-grid": "a non-negative number of steps",
                    "--seeds": "a non-negative integer seed", "--depths": "a positive number of layers"][flag]!
        let values = try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            guard let value = parse(String(item)) else { throw ValidationError("\(flag): '\(item)' is not \(what)") }
            return value
        }
        guard Set(values).count == values.count else { throw ValidationError("\(flag): '\(text)' lists a value twice") }
        return values
    }

    func run() throws {
        StopSignal.install()
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
            let grid = Comparison.Grid(learningRates: try list("--lr-grid", lrGrid) { Double($0) } ?? [base.learningRate],
                                       warmups: try list("--warmup-grid", warmupGrid) { Int($0) } ?? [base.warmup],
                                       seeds: try list("--seeds", seeds) { UInt64($0) } ?? [base.seed])
            let layers = try list("--depths", depths) { Int($0) }
            var results: [Comparison.DepthResult] = []
            for depth in layers ?? [base.model.layers] {
                var config = base
                config.model.layers = depth
                let study = ComparisonStudy(base: config, corpus: corpus, collective: collective, threads: threads.count(collective),
                                            directory: layers == nil ? directory : directory + "/L\(depth)", grid: grid,
                                            target: target, trains: !noTrain, log: say)
                guard let result = try study.results(specs) else {
                    say("compare stopped by a signal; the same command continues from the interrupted run's checkpoint")
                    return .success
                }
                results.append(result)
            }
            if collective.isRoot {
                let context = Comparison.TableContext(base: base, grid: grid, target: target, corpus: corpus.name,
                                                      corpusBytes: corpus.bytes.count, ranks: collective.size,
                                                      threads: threads.count(collective))
                try write(results, context, to: directory, perDepth: layers != nil)
            }
            return .success
        }
    }

    /// compare.md, compare.json and the charts.
    private func write(_ results: [Comparison.DepthResult], _ context: Comparison.TableContext, to directory: String,
                       perDepth: Bool) throws {
        let table = Comparison.table(results, context)
        print(table)
        try AtomicFile.write(Data(table.utf8), to: directory + "/compare.md")
        try AtomicFile.write(Data(JSONCoding.string(results, pretty: true).utf8), to: directory + "/compare.json")
        var written = ["compare.md", "compare.json"]
        func chart(_ svg: String, _ name: String) throws {
            try AtomicFile.write(Data(svg.utf8), to: directory + "/" + name)
            written.append(name)
        }
        for depth in results {
            let prefix = perDepth ? "L\(depth.layers)/" : ""
            try chart(StudyCharts.validation(depth).svg(width: 960), prefix + "valid_bpb.svg")
            // α of each row's chosen setting on the tuning seed.
            let alphaRuns = try RunMetrics.load(depth.rows.compactMap { $0.seeds.first?.directory })
            let panels = RunMetrics.alphaCharts(alphaRuns)
            if !panels.isEmpty { try chart(LineChart.svg(stacking: panels, title: "α per layer, \(depth.layers) layers"), prefix + "alpha.svg") }
        }
        if results.count > 1 {
            try chart(StudyCharts.stepsToTarget(results, target: target).svg(width: 960), "depth_steps.svg")
            try chart(StudyCharts.finalValidation(results).svg(width: 960), "depth_valid.svg")
        }
        print("wrote " + written.map { directory + "/" + $0 }.joined(separator: ", "))
    }
}
