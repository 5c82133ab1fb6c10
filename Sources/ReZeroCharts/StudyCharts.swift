import Foundation
import ReZero

/// The charts of `rezero compare`: each row's validation curve over its seeds, and the rows
/// against depth. Drawn from `Comparison` results alone, which come from the run directories.
public enum StudyCharts {
    /// Validation bits/byte by step, a line per row: the mean over its seeds at the chosen
    /// setting (at each step, of the seeds evaluated there), and a band from their minimum to
    /// their maximum.
    public static func validation(_ depth: Comparison.DepthResult) -> LineChart {
        let series = depth.rows.compactMap { row -> LineChart.Series? in
            guard let chosen = row.chosen, !row.seeds.isEmpty else { return nil }
            let byStep = Dictionary(grouping: row.seeds.flatMap(\.validation).filter { $0.bpb.isFinite }, by: \.step)
            let steps = byStep.keys.sorted()
            let points = steps.map { step in (x: Double(step), y: byStep[step]!.map(\.bpb).reduce(0, +) / Double(byStep[step]!.count)) }
            let band = row.seeds.count > 1 ? steps.map { step in
                (x: Double(step), low: byStep[step]!.map(\.bpb).min()!, high: byStep[step]!.map(\.bpb).max()!)
            } : []
            var label = "\(row.run), lr \(chosen.learningRate)" + (chosen.warmup > 0 ? ", warm-up \(chosen.warmup)" : "")
            label += row.seeds.count > 1 ? " (\(row.seeds.count) seeds)" : ""
            if !row.diverged.isEmpty { label += " (\(row.diverged.count) diverged)" }
            return LineChart.Series(label: label, points: points, markers: points.count <= RunMetrics.markerLimit, band: band)
        }
        return LineChart(title: "validation bits/byte, \(depth.layers) layers: mean of the seeds, band min–max", xLabel: "step",
                         yLabel: "validation bits/byte", series: series, yCeiling: RunMetrics.bitsPerByteCeiling)
    }

    /// Steps to the target against depth (log scale), a line per row: the mean over the seeds
    /// that reached it, a band from the fewest to the most. Depths where the row ran but no seed
    /// reached it break the line, and the legend names them; depths where it did not run are left out.
    public static func stepsToTarget(_ depths: [Comparison.DepthResult], target: Double) -> LineChart {
        byDepth(depths, title: "steps to validation ≤ \(target) bits/byte: mean of the seeds, band min–max",
                yLabel: "steps to ≤ \(target) bits/byte", absent: "not reached") { row in
            guard let steps = row.stepsToTarget else { return nil }
            return (steps.mean, steps.min, steps.max)
        }
    }

    /// Final validation bits/byte against depth (log scale): mean over seeds, band min–max.
    public static func finalValidation(_ depths: [Comparison.DepthResult]) -> LineChart {
        byDepth(depths, title: "final validation bits/byte: mean of the seeds, band min–max",
                yLabel: "final validation bits/byte", absent: "diverged") { row in
            guard let valid = row.finalValid else { return nil }
            return (valid.mean, valid.min, valid.max)
        }
    }

    private static func byDepth(_ depths: [Comparison.DepthResult], title: String, yLabel: String, absent meaning: String,
                                value: (Comparison.RowResult) -> (mean: Double, low: Double, high: Double)?) -> LineChart {
        var names: [String] = []
        for name in depths.flatMap({ $0.rows.map(\.run) }) where !names.contains(name) { names.append(name) }
        let series = names.map { name -> LineChart.Series in
            var points: [(x: Double, y: Double)] = [], band: [(x: Double, low: Double, high: Double)] = [], absent: [Int] = []
            for depth in depths {
                guard let row = depth.rows.first(where: { $0.run == name }), !row.seeds.isEmpty else { continue }
                let x = log2(Double(depth.layers))
                if let v = value(row) {
                    points.append((x, v.mean))
                    band.append((x, v.low, v.high))
                } else {
                    points.append((x, .nan))
                    band.append((x, .nan, .nan))
                    absent.append(depth.layers)
                }
            }
            let label = name + (absent.isEmpty ? "" : " (\(meaning) at \(absent.map(String.init).joined(separator: ", ")) layers)")
            return LineChart.Series(label: label, points: points, markers: true, band: band)
        }
        let ticks = depths.map { (value: log2(Double($0.layers)), label: "\($0.layers)") }
        return LineChart(title: title, xLabel: "layers (log scale)", yLabel: yLabel, series: series, xTicks: ticks)
    }
}
