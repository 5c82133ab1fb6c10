import Foundation
import XCTest
@testable import ReZero

/// The checkpoint loader against thousands of damaged and crafted files: whatever the bytes, it
/// returns a checkpoint or throws a named error, and never traps (a trap would end this process).
/// Damaged files (bit flips, truncations, edits left unsealed) must load bit-identically or fail;
/// crafted ones (edits with the header checksum recomputed, as a buggy or hostile writer would)
/// must pass the same validation as the command-line flags, or fail. Reproducible: one seed.
final class CheckpointFuzzTests: XCTestCase {
    static let seed: UInt64 = 20_261_126

    /// SplitMix64: a small seeded generator, so that every case can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// A small two-layer checkpoint after two steps (so that the moments are not zero).
    func original() throws -> Data {
        var config = TrainingConfig()
        config.model = ModelConfig(layers: 2, dModel: 8, heads: 2, ffMult: 2, seqLen: 8)
        config.batchSize = 2
        config.evalBytes = 2048
        let trainer = try Trainer(config: config, corpus: SyntheticSource.standard.corpus(bytes: 20_000), collective: .local)
        for _ in 0..<2 { try trainer.step() }
        return Checkpoint.encode(config: trainer.config, state: trainer.state, corpus: trainer.corpus.identity,
                                 layout: trainer.model.layout, parameters: trainer.model.parameters, optimizer: trainer.optimizer)
    }

    /// The header as a JSON object and the data section.
    func split(_ file: Data) -> (header: [String: Any], data: Data) {
        let n = Int(file.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let header = try! JSONSerialization.jsonObject(with: file[8..<(8 + n)]) as! [String: Any]
        return (header, file.suffix(from: 8 + n))
    }

    func join(_ headerText: Data, _ data: Data) -> Data {
        var out = Data()
        withUnsafeBytes(of: UInt64(headerText.count).littleEndian) { out.append(contentsOf: $0) }
        return out + headerText + data
    }

    func join(_ header: [String: Any], _ data: Data) -> Data {
        join(try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), data)
    }

    /// The file with its header checksum recomputed over its (edited) header, when it parses.
    func sealed(_ file: Data) -> Data {
        guard let parsed = try? SafeTensors.decode(file, path: "") else { return file }
        var (header, data) = split(file)
        var metadata = parsed.metadata
        metadata[Checkpoint.headerChecksumKey] = Checkpoint.headerChecksum(metadata: parsed.metadata, entries: parsed.entries)
        header["__metadata__"] = metadata
        return join(header, data)
    }

    nonisolated(unsafe) static let values: [Any] = [-1, 0, 1, 2, 3, 7, -(1 << 62), 1 << 31, (1 << 32) + 1, 1 << 40, (1 << 62) + 256, Int.max,
                                1e300, -1e300, 1.5, -0.5, 0.25, "x", "", NSNull(), true, [Int](), [String: Int]()]

    /// Every place a JSON edit can go: (description, edit). Metadata values that hold JSON
    /// (config, state, corpus) are edited inside; the others replaced by the value's text.
    func editSites(_ header: [String: Any]) -> [(String, (inout [String: Any], Any) -> Void)] {
        var sites: [(String, (inout [String: Any], Any) -> Void)] = []
        let metadata = header["__metadata__"] as! [String: String]
        for (key, text) in metadata {
            if let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] {
                for path in leafPaths(object) {
                    sites.append(("\(key).\(path.joined(separator: "."))", { header, value in
                        var m = header["__metadata__"] as! [String: String]
                        var inner = try! JSONSerialization.jsonObject(with: Data(m[key]!.utf8)) as! [String: Any]
                        Self.set(&inner, path, value)
                        m[key] = String(decoding: try! JSONSerialization.data(withJSONObject: inner, options: [.fragmentsAllowed]), as: UTF8.self)
                        header["__metadata__"] = m
                    }))
                }
            } else {
                sites.append(("__metadata__.\(key)", { header, value in
                    var m = header["__metadata__"] as! [String: String]
                    m[key] = "\(value)"
                    header["__metadata__"] = m
                }))
            }
        }
        for (name, entry) in header where name != "__metadata__" {
            let e = entry as! [String: Any]
            for field in ["shape", "data_offsets"] {
                for i in (e[field] as! [Any]).indices {
                    sites.append(("\(name).\(field)[\(i)]", { header, value in
                        var e = header[name] as! [String: Any]
                        var list = e[field] as! [Any]
                        list[i] = value
                        e[field] = list
                        header[name] = e
                    }))
                }
                sites.append(("\(name).\(field)", { header, value in
                    var e = header[name] as! [String: Any]
                    e[field] = value
                    header[name] = e
                }))
            }
            sites.append(("\(name).dtype", { header, value in
                var e = header[name] as! [String: Any]
                e["dtype"] = value
                header[name] = e
            }))
        }
        return sites.sorted { $0.0 < $1.0 }
    }

    func leafPaths(_ object: [String: Any], _ prefix: [String] = []) -> [[String]] {
        object.keys.sorted().flatMap { key in
            (object[key] as? [String: Any]).map { leafPaths($0, prefix + [key]) } ?? [prefix + [key]]
        }
    }

    static func set(_ object: inout [String: Any], _ path: [String], _ value: Any) {
        if path.count == 1 {
            object[path[0]] = value
        } else {
            var inner = object[path[0]] as! [String: Any]
            Self.set(&inner, Array(path.dropFirst()), value)
            object[path[0]] = inner
        }
    }

    /// An error's problem without its particulars (names, numbers): what kind of check caught it.
    static func kind(of problem: String) -> String {
        problem.prefix { $0 != "(" && $0 != ":" }
            .replacingOccurrences(of: #"tensor \S+"#, with: "tensor T", options: .regularExpression)
            .replacingOccurrences(of: #"-?[0-9][0-9.e+]*"#, with: "N", options: .regularExpression)
            .replacingOccurrences(of: #"\[[^\]]*\]"#, with: "[…]", options: .regularExpression)
            .trimmingCharacters(in: .whitespaces)
    }

    func testMutatedCheckpointsLoadOrFailWithANamedErrorAndNeverTrap() throws {
        let file = try original()
        let reference = try Checkpoint.decode(file, path: "original")
        let (header, data) = split(file)
        let headerText = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        let names = header.keys.filter { $0 != "__metadata__" }.sorted()
        let sites = editSites(header)
        var random = Generator(state: Self.seed)
        // (kind, mutated file, whether it must load identically if it loads at all)
        var cases: [(String, Data, Bool)] = []
        for bit in 0..<64 {
            var f = file
            f[bit / 8] ^= 1 << (bit % 8)
            cases.append(("length bit \(bit)", f, true))
        }
        for _ in 0..<1500 {
            var f = file
            let i = Int.random(in: 8..<(8 + headerText.count), using: &random)
            f[i] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            cases.append(("header byte \(i) flipped", f, true))
        }
        for _ in 0..<400 {
            var f = file
            let i = Int.random(in: (file.count - data.count)..<file.count, using: &random)
            f[i] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            cases.append(("data byte \(i) flipped", f, true))
        }
        for length in Array(0..<20) + (0..<200).map({ _ in Int.random(in: 0..<file.count, using: &random) }) {
            cases.append(("truncated to \(length) bytes", file.prefix(length), true))
        }
        // Half the edits go to the metadata (config, state, corpus, strings), half to the tensor table.
        let tableSites = sites.filter { site in names.contains { site.0.hasPrefix($0 + ".") } }
        let metadataSites = sites.filter { site in !tableSites.contains { $0.0 == site.0 } }
        for _ in 0..<2000 {
            let (site, edit) = (Bool.random(using: &random) ? metadataSites : tableSites).randomElement(using: &random)!
            let value = Self.values.randomElement(using: &random)!
            var edited = header
            edit(&edited, value)
            let mutated = join(edited, data)
            let seal = Bool.random(using: &random)
            cases.append(("\(site) = \(value)\(seal ? ", resealed" : "")", seal ? sealed(mutated) : mutated, !seal))
        }
        for _ in 0..<300 {
            let a = names.randomElement(using: &random)!, b = names.randomElement(using: &random)!
            let seal = Bool.random(using: &random)
            let text = String(decoding: headerText, as: UTF8.self)
            if Bool.random(using: &random) {
                // Two entries under one name (the JSON parser keeps the last).
                let duplicated = text.replacingOccurrences(of: "\"\(a)\":{", with: "\"\(b)\":{")
                let f = join(Data(duplicated.utf8), data)
                cases.append(("\(a) renamed to \(b)\(seal ? ", resealed" : "")", seal ? sealed(f) : f, !seal))
            } else {
                var edited = header
                edited[a] = nil
                let f = join(edited, data)
                cases.append(("\(a) removed\(seal ? ", resealed" : "")", seal ? sealed(f) : f, !seal))
            }
        }

        var loaded = 0, rejected: [String: Int] = [:]
        let start = Date()
        for (index, (kind, bytes, mustBeIdentical)) in cases.enumerated() {
            let label = "case \(index) (seed \(Self.seed)): \(kind)"
            do {
                let checkpoint = try Checkpoint.decode(bytes, path: "fuzzed.safetensors")
                loaded += 1
                if mustBeIdentical {
                    XCTAssertEqual(checkpoint.config, reference.config, label)
                    XCTAssertEqual(checkpoint.state, reference.state, label)
                    XCTAssertEqual(checkpoint.optimizerUpdates, reference.optimizerUpdates, label)
                    XCTAssertEqual(checkpoint.corpus, reference.corpus, label)
                    XCTAssertEqual(checkpoint.file.entries, reference.file.entries, label)
                    XCTAssertEqual(checkpoint.file.data, reference.file.data, label)
                }
                // Whatever loads is a model that runs.
                let model = try checkpoint.model(batch: 1)
                _ = try Sampler.generate(model: model, prompt: [65], count: 1, temperature: 1, seed: 1)
            } catch let error as SafeTensors.FormatError {
                XCTAssertEqual(error.path, "fuzzed.safetensors", label)
                XCTAssertFalse(error.problem.isEmpty, label)
                rejected[Self.kind(of: error.problem), default: 0] += 1
            } catch {
                XCTFail("\(label): not a named format error: \(type(of: error)) \(error)")
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "%d mutated checkpoints in %.1f s: %d loaded, %d rejected", cases.count, seconds, loaded,
                     cases.count - loaded))
        for (problem, count) in rejected.sorted(by: { $0.value > $1.value }) { print("  \(count) × \(problem)") }
        // The crafted files reach the validation behind the checksums.
        XCTAssertGreaterThan(rejected["metadata out of range", default: 0], 30)
        XCTAssertGreaterThan(rejected["header checksum mismatch", default: 0], 500)
    }

    /// Files of format version 2 (before the header checksum and the corpus identity) still read,
    /// with every other check; a version 3 file whose version reads 2 does not skip the header check.
    func testVersion2FilesReadWithEveryOtherCheck() throws {
        let file = try original()
        let reference = try Checkpoint.decode(file, path: "original")
        var (header, data) = split(file)
        var metadata = header["__metadata__"] as! [String: String]
        metadata["format_version"] = "2"
        let downgraded = join(header.merging(["__metadata__": metadata]) { $1 }, data)
        XCTAssertThrowsError(try Checkpoint.decode(downgraded, path: "downgraded")) {
            XCTAssertTrue("\($0)".contains("the header is corrupted"), "\($0)")
        }
        metadata[Checkpoint.headerChecksumKey] = nil
        metadata["corpus"] = nil
        var state = try JSONSerialization.jsonObject(with: Data(metadata["state"]!.utf8)) as! [String: Any]
        state["steps_above_initial_loss"] = nil
        metadata["state"] = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
        header["__metadata__"] = metadata
        let old = try Checkpoint.decode(join(header, data), path: "version2")
        XCTAssertNil(old.corpus)
        XCTAssertEqual(old.config, reference.config)
        XCTAssertEqual(old.state, reference.state)
        XCTAssertEqual(old.file.data, reference.file.data)
        data[data.startIndex + 100] ^= 1
        XCTAssertThrowsError(try Checkpoint.decode(join(header, data), path: "version2")) {
            XCTAssertTrue("\($0)".contains("data checksum mismatch"), "\($0)")
        }
    }
}
