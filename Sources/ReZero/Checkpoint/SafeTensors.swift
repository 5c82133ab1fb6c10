import Foundation

/// The safetensors layout: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to {dtype, shape, data_offsets} plus a `__metadata__` map of strings, then the raw
/// little-endian data. Only F32 tensors are written or read here.
public enum SafeTensors {
    public struct Tensor {
        public let name: String
        public let shape: [Int]
        public let values: UnsafeBufferPointer<Float>
        public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    public struct FormatError: Error, CustomStringConvertible {
        public let path: String, problem: String
        public var description: String { "\(path): \(problem)" }
    }

    /// A tensor's place in a file: its shape and the bytes it occupies in the data section.
    public struct Entry: Equatable, Sendable {
        public let name: String
        public let shape: [Int]
        public let range: Range<Int>
    }

    /// Where `tensors` go when written in the given order: one after the other from byte 0.
    static func entries(_ tensors: [Tensor]) -> [Entry] {
        var offset = 0
        return tensors.map { t in
            defer { offset += t.values.count * 4 }
            return Entry(name: t.name, shape: t.shape, range: offset..<(offset + t.values.count * 4))
        }
    }

    /// Serializes tensors (in the given order) and metadata into one buffer.
    public static func encode(_ tensors: [Tensor], metadata: [String: String]) -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        let entries = entries(tensors)
        for e in entries {
            header[e.name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [e.range.lowerBound, e.range.upperBound]]
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + (entries.last?.range.upperBound ?? 0))
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            out.append(contentsOf: UnsafeRawBufferPointer(t.values))
        }
        return out
    }

    /// A parsed file: the metadata and, per tensor, its shape and its values' range in `data`.
    public struct File {
        public let path: String
        public let metadata: [String: String]
        /// Every tensor, in the order of their data.
        public let entries: [Entry]
        private let index: [String: Int]
        /// The data section (after the header).
        public let data: Data

        init(path: String, metadata: [String: String], entries: [Entry], data: Data) {
            self.path = path
            self.metadata = metadata
            self.entries = entries
            index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
            self.data = data
        }

        public var names: [String] { entries.map(\.name) }

        public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

        public func values(_ name: String) -> [Float]? {
            guard let e = entry(name) else { return nil }
            return [Float](unsafeUninitializedCapacity: e.range.count / 4) { buffer, count in
                data.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: raw.baseAddress! + e.range.lowerBound,
                                                                            byteCount: e.range.count)
                }
                count = e.range.count / 4
            }
        }

        /// Copies a tensor into `destination`, checking its shape.
        public func copy(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
            guard let e = entry(name) else { throw FormatError(path: path, problem: "tensor \(name) is missing") }
            guard e.shape == shape else {
                throw FormatError(path: path, problem: "tensor \(name) has shape \(e.shape), expected \(shape)")
            }
            data.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(destination).copyMemory(from: raw.baseAddress! + e.range.lowerBound, byteCount: e.range.count)
            }
        }
    }

    public static func read(path: String) throws -> File {
        try decode(readBytes(path: path), path: path)
    }

    static func readBytes(path: String) throws -> Data {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw FormatError(path: path, problem: FileManager.default.fileExists(atPath: path)
                              ? "cannot be read" : "no such file")
        }
        return bytes
    }

    /// The largest header accepted (the reference implementation's limit).
    static let maximumHeaderLength = 100_000_000

    /// Parses a file, checking its structure: a JSON header of F32 tensors whose data, 4-byte
    /// aligned, tiles the data section exactly (sorted, contiguous, nothing outside, no gap).
    public static func decode(_ bytes: Data, path: String) throws -> File {
        func fail(_ problem: String) -> FormatError { FormatError(path: path, problem: problem) }
        guard bytes.count >= 8 else { throw fail("too short (\(bytes.count) bytes) to be a safetensors file") }
        let headerLength = bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength >= 2, headerLength <= UInt64(Swift.min(bytes.count - 8, maximumHeaderLength)) else {
            throw fail("header length \(headerLength) does not fit in a \(bytes.count)-byte file: not a safetensors file, or truncated")
        }
        let headerBytes = bytes[bytes.startIndex + 8..<bytes.startIndex + 8 + Int(headerLength)]
        guard headerBytes.first == UInt8(ascii: "{"),
              let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw fail("header is not a JSON object: not a safetensors file")
        }
        let data = Data(bytes.suffix(from: bytes.startIndex + 8 + Int(headerLength)))
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let strings = m as? [String: String] else { throw fail("__metadata__ is not a map of strings") }
            metadata = strings
        }
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = e["shape"] as? [Int], let offsets = e["data_offsets"] as? [Int], offsets.count == 2
            else { throw fail("entry for tensor \(name) is malformed (dtype, shape and data_offsets must be a string and integers)") }
            guard dtype == "F32" else { throw fail("tensor \(name) has dtype \(dtype); only F32 is supported") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name) has a negative dimension in shape \(shape)") }
            guard let bytes = byteCount(shape) else { throw fail("tensor \(name) has shape \(shape), too large to address") }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] - offsets[0] == bytes else {
                throw fail("tensor \(name) has data_offsets \(offsets) that do not match its shape \(shape)")
            }
            guard offsets[0] % 4 == 0 else { throw fail("tensor \(name) starts at byte \(offsets[0]), not 4-byte aligned") }
            guard offsets[1] <= data.count else {
                throw fail("tensor \(name) ends at byte \(offsets[1]) of a \(data.count)-byte data section: file truncated")
            }
            entries.append(Entry(name: name, shape: shape, range: offsets[0]..<offsets[1]))
        }
        entries.sort { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
        var end = 0
        for e in entries {
            guard e.range.lowerBound == end else {
                throw fail(e.range.lowerBound < end ? "tensor \(e.name) overlaps the tensor before it (data_offsets from \(e.range.lowerBound))"
                           : "bytes \(end)..<\(e.range.lowerBound) of the data section belong to no tensor")
            }
            end = e.range.upperBound
        }
        guard end == data.count else {
            throw fail("the data section has \(data.count) bytes but its tensors end at byte \(end)")
        }
        return File(path: path, metadata: metadata, entries: entries, data: data)
    }

    /// 4 × the product of the dimensions, or nil if that overflows.
    static func byteCount(_ shape: [Int]) -> Int? {
        var count = 4
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }
}

/// 64-bit FNV-1a, for checksums of checkpoint data and parameter buffers.
public func fnv1a64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var hash = seed
    // Eight bytes per round keeps this near memory speed; still FNV-style mixing per byte lane.
    let words = bytes.count / 8
    for i in 0..<words {
        hash = (hash ^ bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01b3
        hash ^= hash >> 29
    }
    for i in (words * 8)..<bytes.count { hash = (hash ^ UInt64(bytes[i])) &* 0x100_0000_01b3 }
    return hash
}
