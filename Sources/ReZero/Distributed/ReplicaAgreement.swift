import Foundation

/// What keeps N replicas one model: they start from the same build and configuration, and their
/// parameters stay bit-identical.
extension Collective {
    /// Every rank compares `description` (configuration, build, parameter count) with rank 0's;
    /// all ranks learn the outcome from one reduction, so a mismatch stops the job, naming each
    /// differing field, rather than hanging it.
    func requireAgreement(on description: String) throws {
        guard size > 1 else { return }
        let root = String(decoding: try broadcast(Array(description.utf8)), as: UTF8.self)
        let differences = JSONDifferences.between(root, description)
        var flags = [differences.isEmpty ? 0.0 : 1.0]
        try allReduce(&flags, .sum)
        guard flags[0] > 0 else { return }
        if differences.isEmpty {
            throw RezeroError.usage("\(Int(flags[0])) rank(s) started with a configuration different from rank 0's; see their messages")
        }
        throw RezeroError.usage("configuration differs from rank 0's: " + differences.joined(separator: "; "))
    }

    /// Replicas must hold bit-identical parameters; true when every rank's checksum is rank 0's.
    func parametersAgree(_ parameters: UnsafePointer<Float>, count: Int) throws -> Bool {
        guard size > 1 else { return true }
        let hash = fnv1a64(UnsafeRawBufferPointer(start: parameters, count: count * MemoryLayout<Float>.stride))
        // Two halves as Doubles: exact for 32-bit values, so max == min iff all ranks agree.
        var high = [Double(hash >> 32), Double(hash & 0xffff_ffff)]
        var low = high
        try allReduce(&high, .max)
        try allReduce(&low, .min)
        return high == low
    }
}

/// Field-by-field differences of two JSON objects, as "path: a ≠ b" with nested keys joined by dots.
public enum JSONDifferences {
    public static func between(_ a: String, _ b: String, prefix: String = "") -> [String] {
        let x = flatten(a), y = flatten(b)
        return Set(x.keys).union(y.keys).sorted().compactMap { key in
            x[key] == y[key] ? nil : "\(prefix)\(key): \(x[key] ?? "absent") ≠ \(y[key] ?? "absent")"
        }
    }

    static func flatten(_ json: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else { return [:] }
        var out: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            if let dictionary = value as? [String: Any] {
                for (key, inner) in dictionary { walk(inner, path.isEmpty ? key : path + "." + key) }
            } else {
                out[path] = "\(value)"
            }
        }
        walk(object, "")
        return out
    }
}

public enum ReZeroBuild {
    /// A hash of this executable, compared across ranks at start: ranks running different builds
    /// must not train together.
    public static let identifier: String = {
        guard let binary = FileManager.default.contents(atPath: "/proc/self/exe") else { return "unknown" }
        return String(binary.withUnsafeBytes { fnv1a64($0) }, radix: 16)
    }()
}
