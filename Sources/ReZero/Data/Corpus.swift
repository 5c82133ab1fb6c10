import Foundation

public enum Split: String, CaseIterable, Codable, Sendable {
    case train, valid, test
}

/// A byte corpus and its 90% / 5% / 5% train / valid / test split (on the full 100,000,000-byte
/// enwik8 exactly the standard 90M / 5M / 5M).
public struct Corpus: Sendable {
    public let name: String
    public let bytes: [UInt8]
    /// The entropy rate of the source in bits per byte, when it is known exactly (synthetic corpus).
    public let entropyRate: Double?
    public let identity: CorpusIdentity

    public init(name: String, bytes: [UInt8], entropyRate: Double? = nil) {
        self.name = name
        self.bytes = bytes
        self.entropyRate = entropyRate
        identity = CorpusIdentity(name: name, bytes: bytes)
    }

    public func range(_ split: Split) -> Range<Int> { Self.range(split, count: bytes.count) }

    public static func range(_ split: Split, count n: Int) -> Range<Int> {
        let trainEnd = n * 90 / 100, validEnd = n * 95 / 100
        switch split {
        case .train: return 0..<trainEnd
        case .valid: return trainEnd..<validEnd
        case .test: return validEnd..<n
        }
    }

    /// Reads a raw byte file such as enwik8.
    public static func load(path: String) throws -> Corpus {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RezeroError.usage("--data \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw RezeroError.usage("--data \(path): is a directory, not a file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RezeroError.usage("--data \(path): cannot be read")
        }
        return Corpus(name: path, bytes: [UInt8](data))
    }

    /// The corpus of a new run: `--data` if given, else `data/enwik8` if present, else the
    /// built-in synthetic source.
    public static func forNewRun(path: String?) throws -> Corpus {
        if path == nil && FileManager.default.fileExists(atPath: "data/enwik8") { return try load(path: "data/enwik8") }
        return try recorded(path: path)
    }

    /// The corpus a configuration records: its file, or the built-in source when it names none.
    public static func recorded(path: String?) throws -> Corpus {
        try path.map { try load(path: $0) } ?? SyntheticSource.standard.corpus()
    }

    /// Throws unless every split can hold one window of `sequence` inputs plus its next byte.
    public func validate(sequence: Int) throws {
        for split in Split.allCases where range(split).count < sequence + 1 {
            throw RezeroError.usage("--data \(name): the \(split) split has \(range(split).count) bytes, fewer than --seq-len + 1 = \(sequence + 1)")
        }
    }

    // MARK: Batches

    /// Fills sequences [first, first+count) of the global batch of `step`: each a random window
    /// of seq+1 train bytes whose start is a function of (seed, step, index in the global batch)
    /// alone, so the global batch does not depend on how many ranks share it.
    public func fillTrainingBatch(tokens: UnsafeMutablePointer<UInt8>, targets: UnsafeMutablePointer<UInt8>,
                                  seed: UInt64, step: Int, first: Int, count: Int, sequence: Int) {
        let train = range(.train)
        bytes.withUnsafeBufferPointer { all in
            for j in 0..<count {
                let counter = UInt64(step) << 32 | UInt64(first + j)
                let start = train.lowerBound + CounterRandom.below(
                    train.count - sequence, seed: seed, stream: CounterRandom.Stream.batches.rawValue,
                    counter: counter)
                let window = all.baseAddress! + start
                (tokens + j * sequence).update(from: window, count: sequence)
                (targets + j * sequence).update(from: window + 1, count: sequence)
            }
        }
    }

    /// Evaluation windows over a split (its first `limit` bytes when given). Each window holds up
    /// to `sequence` input bytes, each predicting the byte after it; after the first window each
    /// starts `context` bytes before the previous one ended, so consecutive windows overlap by
    /// `context` bytes that only serve as context. Every byte of the split but its first is
    /// scored exactly once, and outside the first window each from at least context + 1 bytes
    /// before it; the last window is shorter when the split does not divide evenly. context = 0
    /// gives non-overlapping windows, every prediction of each scored.
    public func evaluationWindows(_ split: Split, sequence: Int, context: Int = 0, limit: Int? = nil) -> [EvaluationWindow] {
        precondition(context >= 0 && context < sequence, "eval context \(context) must be in 0..<\(sequence)")
        var r = range(split)
        if let limit, limit < r.count { r = r.lowerBound..<(r.lowerBound + limit) }
        var windows: [EvaluationWindow] = []
        // Inputs before `scoredEnd` have had the byte after them scored.
        var scoredEnd = r.lowerBound
        while scoredEnd + 1 < r.upperBound {
            let start = windows.isEmpty ? r.lowerBound : scoredEnd - context
            let length = Swift.min(sequence, r.upperBound - 1 - start)
            windows.append(EvaluationWindow(inputs: start..<(start + length), firstScored: scoredEnd - start))
            scoredEnd = start + length
        }
        return windows
    }

    /// Throws unless 0 ≤ context < sequence: a window of `sequence` bytes must score at least one.
    public static func validate(evalContext context: Int, sequence: Int) throws(RezeroError) {
        try require(context >= 0 && context < sequence, "--eval-context", context,
                    "must be at least 0 and less than the model's --seq-len \(sequence) (a window must score at least one byte)")
    }
}

/// One window of an evaluation: the model reads `inputs` (each byte predicting the next), and the
/// predictions at positions `firstScored...` of the window count; those before only give context.
public struct EvaluationWindow: Equatable, Sendable {
    public let inputs: Range<Int>
    public let firstScored: Int
    /// The bytes this window scores.
    public var scored: Int { inputs.count - firstScored }
}
