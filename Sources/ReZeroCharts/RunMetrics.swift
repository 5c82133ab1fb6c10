import Foundation
import ReZero

/// A run directory's metrics.jsonl (read with `MetricsLog`'s resume rule) and the model from the
/// config.json beside it: what `rezero plot` draws.
public struct RunMetrics: Sendable {
    public let directory: String
    /// The run's name in legends: the directory's last path component, and for a run of a
    /// `compare` grid (`…/rezero/lr-0.01/seed-2`) the row's name with its setting: "rezero, lr
    /// 0.01, seed 2".
    public var label: String
    public let variant: String
    public let layers: Int
    /// The training records, by step; parallel arrays.
    public private(set) var steps: [Int] = []
    public private(set) var bpb: [Double] = []
    /// α per layer of each training record; empty for variants without α.
    public private(set) var alpha: [[Double]] = []
    /// The evaluations, by step.
    public private(set) var valid: [(step: Int, bpb: Double)] = []
    /// The step the trainer declared the run diverged at, if it did.
    public private(set) var declaredDivergence: Int?

    public init(directory: String) throws(MetricsLog.ReadError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MetricsLog.ReadError(path: directory, line: nil, problem: "no such directory")
        }
        self.directory = directory
        var components = URL(fileURLWithPath: directory).standardizedFileURL.pathComponents
        let settingNames = [(Comparison.learningRateDirectoryPrefix, "lr "), (Comparison.warmupDirectoryPrefix, "warm-up "),
                            (Comparison.seedDirectoryPrefix, "seed ")]
        var setting: [String] = []
        while components.count > 1, let last = components.last,
              let (prefix, name) = settingNames.first(where: { last.hasPrefix($0.0) }) {
            setting.insert(name + last.dropFirst(prefix.count), at: 0)
            components.removeLast()
        }
        label = ([components.last ?? directory] + setting).joined(separator: ", ")
        let model = try Self.model(directory + "/config.json")
        variant = model.variant
        layers = model.layers
        for record in try MetricsLog.read(directory + "/metrics.jsonl") {
            switch record.kind {
            case .divergence:
                declaredDivergence = record.step
            case .evaluation:
                valid.append((record.step, record.validBpb!))
            case .training:
                guard let bits = record.trainingBitsPerByte else { continue }
                steps.append(record.step)
                bpb.append(bits)
                alpha.append(record.alpha ?? [])
            }
        }
    }

    /// Loads runs for one chart; labels that would collide get their parent directory's name.
    public static func load(_ directories: [String]) throws(MetricsLog.ReadError) -> [RunMetrics] {
        var runs: [RunMetrics] = []
        for directory in directories { runs.append(try RunMetrics(directory: directory)) }
        for indices in Dictionary(grouping: runs.indices, by: { runs[$0].label }).values where indices.count > 1 {
            for i in indices {
                let url = URL(fileURLWithPath: runs[i].directory).standardizedFileURL
                runs[i].label = url.deletingLastPathComponent().lastPathComponent + "/" + url.lastPathComponent
            }
        }
        return runs
    }

    /// (step, α) series, one per layer.
    public var alphaByLayer: [[(step: Int, value: Double)]] {
        let count = alpha.map(\.count).max() ?? 0
        return (0..<count).map { l in
            zip(steps, alpha).compactMap { step, values in l < values.count ? (step, values[l]) : nil }
        }
    }

    /// The step the trainer stopped the run as diverged, else the first with a non-finite loss.
    public var divergedAt: Int? {
        declaredDivergence ?? zip(steps, bpb).first { !$0.1.isFinite }?.0
    }

    private struct RunConfig: Decodable {
        struct Model: Decodable {
            var variant: String
            var layers: Int
        }
        var model: Model
    }

    private static func model(_ path: String) throws(MetricsLog.ReadError) -> RunConfig.Model {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MetricsLog.ReadError(path: path, line: nil, problem: "no such file")
        }
        do {
            return try JSONCoding.decoder().decode(RunConfig.self, from: data).model
        } catch {
            throw MetricsLog.ReadError(path: path, line: nil, problem: MetricsLog.describe(error))
        }
    }
}

// MARK: Charts

extension RunMetrics {
    /// Off the chart above this: 8 bits/byte is a uniform guess, so only a diverged run's
    /// values lie much higher, and they would otherwise set the scale.
    static let bitsPerByteCeiling = 8.5
    /// Markers on a series with more points would merge into a thick line.
    static let markerLimit = 60
    /// Layers beyond this get a color scale rather than a legend row each.
    static let legendRowLimit = 10

    /// Validation bits/byte of every run on one chart, titled by its y axis; a run without
    /// evaluations shows its training bits/byte instead, marked "(train)".
    public static func validationChart(_ runs: [RunMetrics]) -> LineChart {
        let series = runs.map { run in
            let train = run.valid.isEmpty
            let points = train ? zip(run.steps, run.bpb).map { (x: Double($0), y: $1) }
                               : run.valid.map { (x: Double($0.step), y: $0.bpb) }
            var label = run.label + (train ? " (train)" : "")
            if let step = run.divergedAt { label += " (diverged at \(step))" }
            return LineChart.Series(label: label, points: points, markers: points.count <= markerLimit)
        }
        let yLabel = runs.allSatisfy(\.valid.isEmpty) ? "training bits/byte" : "validation bits/byte"
        return LineChart(title: yLabel, xLabel: "step", yLabel: yLabel, series: series, yCeiling: bitsPerByteCeiling)
    }

    /// A panel per run that has α, a line per layer from light (layer 0) to dark; empty when no
    /// run has α.
    public static func alphaCharts(_ runs: [RunMetrics]) -> [LineChart] {
        runs.compactMap { run in
            let layers = run.alphaByLayer
            guard !layers.isEmpty else { return nil }
            let colors = LineChart.sequential(layers.count)
            let series = layers.enumerated().map { l, points in
                LineChart.Series(label: "layer \(l)", color: colors[l], points: points.map { (x: Double($0.step), y: $0.value) })
            }
            return LineChart(title: "\(run.label) (\(run.variant), \(run.layers) layers)", xLabel: "step", yLabel: "α",
                             series: series, legend: layers.count <= legendRowLimit ? .entries : .colorScale)
        }
    }
}
