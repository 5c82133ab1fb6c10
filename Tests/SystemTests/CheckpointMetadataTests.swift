import XCTest
@testable import ReZero
import TestSupport

/// Checkpoints whose header says something impossible — the probes of a fault-injection campaign:
/// zero heads, a negative context, a petabyte-wide model, heads that do not divide the width, a
/// negative step, a shape whose size wraps around — with the header checksum recomputed, as a
/// buggy or hostile writer would leave them. Every command that reads a checkpoint refuses each
/// one as bad input (exit 2) naming the file and the field; none crashes or runs on.
final class CheckpointMetadataTests: XCTestCase {
    /// The file with `edit` applied to its header and, when it has one and `reseal`, its header
    /// checksum recomputed. Keys are tried in snake_case and in camelCase (older builds wrote the latter).
    func edited(_ path: String, to newPath: String, reseal: Bool = true, _ edit: (inout [String: Any]) -> Void) throws {
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(file.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        var header = try JSONSerialization.jsonObject(with: file[8..<(8 + n)]) as! [String: Any]
        edit(&header)
        var metadata = header["__metadata__"] as! [String: String]
        if reseal && metadata[Checkpoint.headerChecksumKey] != nil {
            let entries = header.compactMap { name, value -> SafeTensors.Entry? in
                guard let e = value as? [String: Any], let shape = e["shape"] as? [Int], let offsets = e["data_offsets"] as? [Int]
                else { return nil }
                return SafeTensors.Entry(name: name, shape: shape, range: offsets[0]..<offsets[1])
            }
            metadata[Checkpoint.headerChecksumKey] = Checkpoint.headerChecksum(metadata: metadata, entries: entries)
            header["__metadata__"] = metadata
        }
        try join(header, file.suffix(from: 8 + n)).write(to: URL(fileURLWithPath: newPath))
    }

    func join(_ header: [String: Any], _ data: Data) -> Data {
        let text = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data()
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { out.append(contentsOf: $0) }
        return out + text + data
    }

    /// Sets `value` at a path inside the JSON held by metadata[key].
    func setMetadata(_ key: String, _ path: [String], _ value: Any) -> (inout [String: Any]) -> Void {
        { header in
            var metadata = header["__metadata__"] as! [String: String]
            var object = try! JSONSerialization.jsonObject(with: Data(metadata[key]!.utf8)) as! [String: Any]
            func set(_ o: inout [String: Any], _ path: ArraySlice<String>) {
                let camel = path.first!.split(separator: "_").enumerated().map { $0 == 0 ? String($1) : $1.capitalized }.joined()
                let key = o[path.first!] == nil && o[camel] != nil ? camel : path.first!
                if path.count == 1 {
                    o[key] = value
                } else {
                    var inner = o[key] as! [String: Any]
                    set(&inner, path.dropFirst())
                    o[key] = inner
                }
            }
            set(&object, path[...])
            metadata[key] = String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            header["__metadata__"] = metadata
        }
    }

    func testImpossibleHeadersAreRefusedByEveryCommand() throws {
        let dir = Paths.temporaryDirectory("metadata")
        let train = try rezero(["train", "--layers", "1", "--d-model", "64", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                                "--steps", "2", "--eval-bytes", "2048", "--threads", "1", "--run-dir", dir + "/run"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let good = dir + "/run/ckpt-00000002.safetensors"
        let cases: [(name: String, edit: (inout [String: Any]) -> Void, problem: String)] = [
            ("heads0", setMetadata("config", ["model", "heads"], 0), "--heads 0"),
            ("seqlen-1", setMetadata("config", ["model", "seq_len"], -1), "--seq-len -1"),
            ("dmodel2e40", setMetadata("config", ["model", "d_model"], 1 << 40), "--d-model 1099511627776"),
            ("heads3", setMetadata("config", ["model", "heads"], 3), "--heads 3: must divide --d-model 64"),
            ("step-1", setMetadata("state", ["step"], -1), "state.step -1"),
            ("wrappedshape", { header in
                var entry = header["head.bias"] as! [String: Any]
                entry["shape"] = [(1 << 62) + 256]
                header["head.bias"] = entry
            }, "tensor head.bias has shape [4611686018427388160], too large to address"),
        ]
        for c in cases {
            let path = dir + "/\(c.name).safetensors"
            try edited(good, to: path, c.edit)
            for command in [["eval", "--checkpoint", path, "--bytes", "2048"], ["sample", "--checkpoint", path, "--length", "5"],
                            ["inspect", path], ["train", "--resume", path, "--steps", "4", "--run-dir", dir + "/resumed-" + c.name]] {
                let result = try rezero(command)
                XCTAssertEqual(result.status, ExitStatus.usage.rawValue, "\(c.name), \(command[0]): \(result.stdout) \(result.stderr)")
                XCTAssertTrue(result.stderr.contains(path) && result.stderr.contains(c.problem),
                              "\(c.name), \(command[0]) must name the file and \(c.problem): \(result.stderr)")
            }
        }
        // A valid value, but the checksum left as it was: a corrupted header.
        let unsealed = dir + "/unsealed.safetensors"
        try edited(good, to: unsealed, reseal: false, setMetadata("state", ["step"], 1))
        let inspect = try rezero(["inspect", unsealed])
        XCTAssertEqual(inspect.status, ExitStatus.usage.rawValue, inspect.stdout)
        XCTAssertTrue(inspect.stderr.contains("header checksum mismatch"), inspect.stderr)
    }
}
