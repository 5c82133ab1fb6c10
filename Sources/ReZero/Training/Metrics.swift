import Foundation

/// One line of a run's metrics.jsonl: a logged training step, an evaluation, or the step a run
/// was declared diverged at. The trainer writes it, and `compare` and `plot` read it back.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    // A training step:
    public var loss: Double?
    public var bpb: Double?
    public var lr: Double?
    public var gradNorm: Double?
    /// α of every layer, for the variants that have it.
    public var alpha: [Double]?
    public var tokensPerS: Double?
    public var tokens: Int?
    public var elapsedS: Double?
    // An evaluation:
    public var validBpb: Double?
    /// The overlap of its windows, read as context only (`TrainingConfig.evalContext`).
    public var evalContext: Int?
    // The end of a diverged run:
    public var diverged: Bool?

    public init(step: Int, loss: Double? = nil, bpb: Double? = nil, lr: Double? = nil, gradNorm: Double? = nil,
                alpha: [Double]? = nil, tokensPerS: Double? = nil, tokens: Int? = nil, elapsedS: Double? = nil,
                validBpb: Double? = nil, evalContext: Int? = nil, diverged: Bool? = nil) {
        self.step = step
        self.loss = loss
        self.bpb = bpb
        self.lr = lr
        self.gradNorm = gradNorm
        self.alpha = alpha
        self.tokensPerS = tokensPerS
        self.tokens = tokens
        self.elapsedS = elapsedS
        self.validBpb = validBpb
        self.evalContext = evalContext
        self.diverged = diverged
    }

    public enum Kind: Sendable { case training, evaluation, divergence }

    public var kind: Kind {
        if diverged == true { return .divergence }
        return validBpb != nil ? .evaluation : .training
    }

    /// Training bits/byte, from whichever of loss and bpb the line has.
    public var trainingBitsPerByte: Double? { bpb ?? loss.map { $0 / M_LN2 } }
}

/// Reads and writes metrics.jsonl.
public enum MetricsLog {
    /// A missing or malformed file: the description names the path, the line and the problem.
    public struct ReadError: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let line: Int?
        public let problem: String
        public var description: String { "\(path)\(line.map { ":\($0)" } ?? ""): \(problem)" }

        public init(path: String, line: Int?, problem: String) {
            self.path = path
            self.line = line
            self.problem = problem
        }
    }

    public static func line(_ record: MetricsRecord) -> Data {
        Data((JSONCoding.string(record) + "\n").utf8)
    }

    /// The records of a metrics file under the one resume rule: a resumed run logs again from its
    /// checkpoint's step, so a record supersedes every earlier record of its kind at the same or
    /// a later step. A last line without its newline may still be being written and is skipped.
    public static func read(_ path: String) throws(ReadError) -> [MetricsRecord] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReadError(path: path, line: nil, problem: FileManager.default.fileExists(atPath: path)
                            ? "cannot be read" : "no such file")
        }
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        let decoder = JSONCoding.decoder()
        var records: [MetricsRecord] = []
        for (index, bytes) in lines.enumerated() where bytes.contains(where: { !isWhitespace($0) }) {
            let record: MetricsRecord
            do {
                record = try decoder.decode(MetricsRecord.self, from: Data(bytes))
            } catch {
                if index == lines.count - 1 { break }
                throw ReadError(path: path, line: index + 1, problem: describe(error))
            }
            records.removeAll { $0.kind == record.kind && $0.step >= record.step }
            records.append(record)
        }
        return records
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool { byte == 9 || byte == 10 || byte == 13 || byte == 32 }

    /// A decoding error in a user's words: the key and what was wrong with it.
    public static func describe(_ error: Error) -> String {
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
}

/// How a run ended: summary.json, and what `train` and `compare` report.
public struct TrainingSummary: Codable, Sendable {
    public enum Status: String, Codable, Sendable { case completed, stopped, diverged }
    public var status: Status
    public var step: Int
    /// nil when the run had no step left to take.
    public var finalLoss: Double?
    public var validBpb: Double?
    public var bestValidBpb: Double?
    /// The source's entropy rate in bits/byte when known (the built-in corpus).
    public var entropyRate: Double?
    public var checkpoint: String?
    public var message: String?
    /// What could not be written (a checkpoint, metrics records, the index), one line each; such a
    /// run exits 1 unless it diverged.
    public var lost: [String]?

    public var exitStatus: ExitStatus { status == .diverged ? .diverged : .success }
}
