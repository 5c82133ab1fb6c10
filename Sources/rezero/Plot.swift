import ArgumentParser
import Foundation
import ReZero
import ReZeroCharts

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw SVG charts of runs' metrics.jsonl: validation bits/byte and α per layer.",
        discussion: """
        Writes valid_bpb.svg (every run on one chart; a run without evaluations shows its training \
        bits/byte, marked "(train)") and alpha.svg (a panel per run with α, i.e. the rezero and \
        rezero-alpha1 variants). Runs are named by their directory's last path component.
        Example: rezero plot runs/rezero runs/postnorm --out runs --title "enwik8, 6 layers"
        """)

    @Argument(help: ArgumentHelp("Run directories, each with metrics.jsonl and config.json (at least one).", valueName: "run-dir"))
    var runDirs: [String]
    @Option(help: ArgumentHelp("Directory the SVGs are written to, created if missing (default: the first run directory).", valueName: "dir"))
    var out: String?
    @Option(help: ArgumentHelp("Experiment name put at the top of every chart (default: none).", valueName: "text"))
    var title: String?

    func run() throws {
        let runs: [RunMetrics]
        do { runs = try RunMetrics.load(runDirs) } catch { throw RezeroError.usage("\(error)") }
        for run in runs where run.steps.isEmpty && run.valid.isEmpty {
            print("note: \(run.directory)/metrics.jsonl has no bits/byte lines yet")
        }
        guard runs.contains(where: { !$0.steps.isEmpty || !$0.valid.isEmpty }) else {
            throw RezeroError.usage("nothing to plot: no metrics.jsonl of \(runDirs.joined(separator: ", ")) has a bits/byte line yet")
        }
        let directory = out ?? runDirs[0]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RezeroError.usage("--out \(directory): cannot create the directory (\(error.localizedDescription))")
        }
        func titled(_ subject: String) -> String { title.map { "\($0): \(subject)" } ?? subject }

        var chart = RunMetrics.validationChart(runs)
        chart.title = titled(chart.title)
        try write(chart.svg(), to: directory + "/valid_bpb.svg")
        let panels = RunMetrics.alphaCharts(runs)
        if panels.isEmpty {
            print("note: no run has α (variants without α: \(Variant.allCases.filter { !$0.architecture.hasAlpha }.map(\.rawValue).joined(separator: ", "))); alpha.svg not written")
        } else {
            for run in runs where run.alphaByLayer.isEmpty {
                print("note: \(run.label) has no α (variant \(run.variant)); left out of alpha.svg")
            }
            try write(LineChart.svg(stacking: panels, title: titled("α per layer")), to: directory + "/alpha.svg")
        }
    }

    private func write(_ svg: String, to path: String) throws {
        try AtomicFile.write(Data(svg.utf8), to: path)
        print("wrote \(path)")
    }
}
