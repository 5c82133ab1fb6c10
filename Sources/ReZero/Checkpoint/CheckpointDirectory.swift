import Foundation

/// The checkpoints of one run directory: `ckpt-<step>.safetensors` files, a `latest` file naming
/// the newest, and `checkpoints.json` recording each one's validation bits per byte for `--keep`.
public struct CheckpointDirectory {
    public let path: String
    public init(_ path: String) { self.path = path }

    var latestPointer: String { path + "/latest" }
    var indexPath: String { path + "/checkpoints.json" }

    /// Deletes temporary files left by a writer that was killed mid-checkpoint.
    public func removeInterruptedWrites() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for name in names where name.hasPrefix(".ckpt-") && name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: path + "/" + name)
        }
    }

    /// Checkpoint files, oldest written first: by modification time, not by step, so a run that
    /// resumed from an early checkpoint (or reuses a directory) counts its own files as newest.
    public func checkpoints() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let files = names.filter { $0.hasPrefix("ckpt-") && $0.hasSuffix(".safetensors") }.map { path + "/" + $0 }
        func written(_ file: String) -> Date {
            ((try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date) ?? .distantPast
        }
        return files.map { ($0, written($0)) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map(\.0)
    }

    /// After a checkpoint is safely on disk: point `latest` at it (atomically), record its
    /// validation bits per byte (or forget a stale one, when it was rewritten without), and prune
    /// to the newest `keep` plus the best. If `latest` cannot be written, the new file is removed
    /// and the error thrown: `latest` still names the previous checkpoint. Returns the problem, if
    /// any, of the index, whose loss leaves the checkpoint committed.
    public func commit(_ checkpoint: String, validBitsPerByte: Double?, keep: Int) throws -> String? {
        let name = URL(fileURLWithPath: checkpoint).lastPathComponent
        if latestName != name {
            do {
                try AtomicFile.write(Data((name + "\n").utf8), to: latestPointer)
            } catch {
                try? FileManager.default.removeItem(atPath: checkpoint)
                throw error
            }
        }
        var index = readIndex()
        index[name] = validBitsPerByte
        let all = checkpoints()
        let best = index.filter { name, _ in all.contains(path + "/" + name) }.min { $0.value < $1.value }?.key
        for file in all.dropLast(keep) where URL(fileURLWithPath: file).lastPathComponent != best {
            try? FileManager.default.removeItem(atPath: file)
            index[URL(fileURLWithPath: file).lastPathComponent] = nil
        }
        do {
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys]), to: indexPath)
        } catch {
            return "checkpoints.json not updated for \(name) (\(error)); --keep may prune by stale bits/byte"
        }
        return nil
    }

    /// The checkpoint `latest` names, if any.
    var latestName: String? {
        (try? String(contentsOfFile: latestPointer, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func readIndex() -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: indexPath),
              let index = try? JSONSerialization.jsonObject(with: data) as? [String: Double] else { return [:] }
        return index
    }

    /// The newest checkpoint that loads and validates: `latest` first, then older files; each one
    /// skipped is reported through `warn`.
    public func latestValid(warn: (String) -> Void) throws -> Checkpoint.Loaded {
        var candidates = checkpoints().reversed().map { $0 }
        if let named = latestName {
            let pointed = path + "/" + named
            candidates.removeAll { $0 == pointed }
            candidates.insert(pointed, at: 0)
        }
        for candidate in candidates {
            do {
                return try Checkpoint.load(path: candidate)
            } catch {
                warn("warning: skipping checkpoint \(error)")
            }
        }
        throw RezeroError.usage("--run-dir \(path): no valid checkpoint")
    }
}
