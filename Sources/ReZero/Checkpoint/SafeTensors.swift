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

    /// Serializes tensors (in the given order) and metadata into one buffer.
    public static func encode(_ tensors: [Tensor], metadata: [String: String]) -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
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
        public let shapes: [String: [Int]]
        public let names: [String]
        let ranges: [String: Range<Int>]
        /// The data section (after the header).
        public let data: Data

        public func values(_ name: String) -> [Float]? {
            guard let r = ranges[name] else { return nil }
            return data[data.startIndex + r.lowerBound..<data.startIndex + r.upperBound]
                .withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }

        /// Copies a tensor into `destination`, checking its shape.
        public func copy(_ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>) throws {
            guard let r = ranges[name], let s = shapes[name] else {
                throw FormatError(path: path, problem: "tensor \(name) is missing")
            }
            guard s == shape else {
                throw FormatError(path: path, problem: "tensor \(name) has shape \(s), expected \(shape)")
            }
            data.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(destination).copyMemory(from: raw.baseAddress! + r.lowerBound, byteCount: r.count)
            }
        }
    }

    public static func read(path: String) throws -> File {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw FormatError(path: path, problem: FileManager.default.fileExists(atPath: path)
                              ? "cannot be read" : "no such file")
        }
        return try decode(bytes, path: path)
    }

    public static func decode(_ bytes: Data, path: String) throws -> File {
        func fail(_ problem: String) -> FormatError { FormatError(path: path, problem: problem) }
        guard bytes.count >= 8 else { throw fail("too short (\(bytes.count) bytes) to be a safetensors file") }
        let headerLength = bytes.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength >= 2, headerLength <= UInt64(bytes.count - 8) else {
            throw fail("header length \(headerLength) does not fit in a \(bytes.count)-byte file: not a safetensors file, or truncated")
        }
        let headerBytes = bytes[bytes.startIndex + 8..<bytes.startIndex + 8 + Int(headerLength)]
        guard headerBytes.first == UInt8(ascii: "{"),
              let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw fail("header is not a JSON object: not a safetensors file")
        }
        let data = bytes.suffix(from: bytes.startIndex + 8 + Int(headerLength))
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let strings = m as? [String: String] else { throw fail("__metadata__ is not a map of strings") }
            metadata = strings
        }
        var shapes: [String: [Int]] = [:], ranges: [String: Range<Int>] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let e = entry as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = e["shape"] as? [Int], let offsets = e["data_offsets"] as? [Int], offsets.count == 2
            else { throw fail("entry for tensor \(name) is malformed") }
            guard dtype == "F32" else { throw fail("tensor \(name) has dtype \(dtype); only F32 is supported") }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(name) has a negative dimension in shape \(shape)") }
            let expected = shape.reduce(1, *) * 4
            guard offsets[0] >= 0, offsets[1] - offsets[0] == expected else {
                throw fail("tensor \(name) has data_offsets \(offsets) that do not match its shape \(shape)")
            }
            guard offsets[1] <= data.count else {
                throw fail("tensor \(name) ends at byte \(offsets[1]) of a \(data.count)-byte data section: file truncated")
            }
            shapes[name] = shape
            ranges[name] = offsets[0]..<offsets[1]
        }
        let names = ranges.keys.sorted { ranges[$0]!.lowerBound < ranges[$1]!.lowerBound }
        return File(path: path, metadata: metadata, shapes: shapes, names: names, ranges: ranges, data: Data(data))
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
