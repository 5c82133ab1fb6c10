import Foundation

/// A run directory's metrics.jsonl, as the trainer writes it, with the model from the
/// config.json beside it: what `rezero plot` draws.
public struct MetricsFile: Sendable {
    /// A missing or malformed file: the description names the path (and line) and the problem.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let line: Int?
        public let problem: String

        public init(path: String, line: Int? = nil, problem: String) {
            self.path = path
            self.line = line
            self.problem = problem
        }

        public var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }
    }

    public let directory: String
    /// The run's name in legends: the directory's last path component.
    public var label: String
    public let variant: String
    public let layers: Int
    /// The training lines, by step; parallel arrays.
    public private(set) var steps: [Int] = []
    public private(set) var loss: [Double] = []
    public private(set) var bpb: [Double] = []
    /// α per layer of each training line; empty for variants without α.
    public private(set) var alpha: [[Double]] = []
    /// The evaluation lines, by step.
    public private(set) var valid: [(step: Int, bpb: Double)] = []
    /// The step the trainer declared the run diverged at, if it did.
    public private(set) var declaredDivergence: Int?

    public init(directory: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Failure(path: directory, problem: "no such directory")
        }
        self.directory = directory
        label = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        // JSON5 reads the NaN and Infinity that Python's json module writes for a diverged run.
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true

        let configPath = directory + "/config.json"
        do {
            let config = try decoder.decode(RunConfig.self, from: try Self.read(configPath))
            variant = config.model.variant
            layers = config.model.layers
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(path: configPath, problem: describe(error))
        }

        let metricsPath = directory + "/metrics.jsonl"
        let lines = try Self.read(metricsPath).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (index, bytes) in lines.enumerated() where bytes.contains(where: { !Self.whitespace.contains($0) }) {
            let record: Line
            do {
                record = try decoder.decode(Line.self, from: Data(bytes))
            } catch {
                // A line without its newline may still be being written.
                if index == lines.count - 1 { break }
                throw Failure(path: metricsPath, line: index + 1, problem: describe(error))
            }
            guard record.validBPB != nil || record.loss != nil || record.bpb != nil else { continue }
            guard let step = record.step else { throw Failure(path: metricsPath, line: index + 1, problem: "missing step") }
            if record.diverged == true { declaredDivergence = step }
            // A resumed run logs again from its checkpoint's step on: the later lines supersede.
            if let bits = record.validBPB {
                while let last = valid.last, last.step >= step { valid.removeLast() }
                valid.append((step, bits))
            } else {
                while let last = steps.last, last >= step {
                    steps.removeLast()
                    loss.removeLast()
                    bpb.removeLast()
                    alpha.removeLast()
                }
                steps.append(step)
                loss.append(record.loss ?? record.bpb! * M_LN2)
                bpb.append(record.bpb ?? record.loss! / M_LN2)
                alpha.append(record.alpha ?? [])
            }
        }
    }

    /// Loads runs for one chart; labels that would collide get their parent directory's name.
    public static func load(_ directories: [String]) throws -> [MetricsFile] {
        var runs = try directories.map(MetricsFile.init(directory:))
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
        declaredDivergence ?? zip(steps, loss).first { !$0.1.isFinite }?.0
    }

    private static let whitespace: Set<UInt8> = [9, 10, 13, 32]

    private static func read(_ path: String) throws -> Data {
        guard FileManager.default.fileExists(atPath: path) else { throw Failure(path: path, problem: "no such file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Failure(path: path, problem: "cannot read (\(error.localizedDescription))")
        }
    }
}

// MARK: Charts

extension MetricsFile {
    /// Off the chart above this: 8 bits/byte is a uniform guess, so only a diverged run's
    /// values lie much higher, and they would otherwise set the scale.
    static let bitsPerByteCeiling = 8.5
    /// Markers on a series with more points would merge into a thick line.
    static let markerLimit = 60
    /// Layers beyond this get a color scale rather than a legend row each.
    static let legendRowLimit = 10

    /// Validation bits/byte of every run on one chart, titled by its y axis; a run without
    /// evaluations shows its training bits/byte instead, marked "(train)".
    public static func validationChart(_ runs: [MetricsFile]) -> LineChart {
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
    public static func alphaCharts(_ runs: [MetricsFile]) -> [LineChart] {
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

// MARK: Decoding

private struct RunConfig: Decodable {
    struct Model: Decodable {
        var variant: String
        var layers: Int
    }

    var model: Model
}

/// One metrics.jsonl record; a null number reads as NaN, as some writers spell a diverged value.
private struct Line: Decodable {
    var step: Int?
    var loss: Double?
    var bpb: Double?
    var alpha: [Double]?
    var validBPB: Double?
    var diverged: Bool?

    enum CodingKeys: String, CodingKey { case step, loss, bpb, alpha, diverged, validBPB = "valid_bpb" }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func number(_ key: CodingKeys) throws -> Double? {
            guard c.contains(key) else { return nil }
            return try c.decodeNil(forKey: key) ? .nan : c.decode(Double.self, forKey: key)
        }
        step = try c.decodeIfPresent(Int.self, forKey: .step)
        loss = try number(.loss)
        bpb = try number(.bpb)
        alpha = try c.decodeIfPresent([Double?].self, forKey: .alpha)?.map { $0 ?? .nan }
        validBPB = try number(.validBPB)
        diverged = try c.decodeIfPresent(Bool.self, forKey: .diverged)
    }
}

/// A decoding error in a user's words: the key path and what was wrong with it.
private func describe(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ keys: [CodingKey]) -> String {
        keys.enumerated().map { i, key in key.intValue.map { "[\($0)]" } ?? (i == 0 ? "" : ".") + key.stringValue }.joined()
    }
    func kind(_ type: Any.Type) -> String {
        if type == Int.self { return "an integer" }
        if type == Double.self { return "a number" }
        if type == String.self { return "a string" }
        return "\(type)".hasPrefix("Array") ? "a list" : "an object"
    }
    switch error {
    case .keyNotFound(let key, let context):
        return "missing \(path(context.codingPath + [key]))"
    case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
        return context.codingPath.isEmpty ? "not a JSON object" : "\(path(context.codingPath)): expected \(kind(type))"
    case .dataCorrupted(let context):
        return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
