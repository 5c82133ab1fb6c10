/// Which bytes a run trained on: the corpus's name (its file, or the built-in source), its size
/// and a hash of all its bytes. Stored in every checkpoint, so that resuming on other data is an
/// error (unless `--allow-data-change`) rather than a silent change.
public struct CorpusIdentity: Codable, Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var bytes: Int
    /// 64-bit FNV-1a (eight-byte lanes) of the bytes, hex.
    public var hash: String

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes.count
        hash = String(bytes.withUnsafeBytes { fnv1a64($0) }, radix: 16)
    }

    /// The same bytes, wherever the file now lives.
    public func sameBytes(as other: CorpusIdentity) -> Bool { bytes == other.bytes && hash == other.hash }

    public var description: String { "\(name) (\(bytes) bytes, hash \(hash))" }

    func validate() throws(RezeroError) {
        try require(bytes >= 0, "corpus.bytes", bytes, "must be non-negative")
    }
}
