import Foundation
import ReZero

public enum Paths {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// The genuine enwik8 prefix shared with the project, when present.
    public static let enwik8Prefix = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/enwik8-prefix").path
    /// The `rezero` executable built beside the test bundle, or $REZERO_BINARY (to show that a
    /// system test fails on an older build).
    public static var rezero: String {
        if let binary = ProcessInfo.processInfo.environment["REZERO_BINARY"] { return binary }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("rezero").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return packageRoot.appendingPathComponent(".build/release/rezero").path
    }

    public static func launch(_ script: String) -> String { packageRoot.appendingPathComponent("launch/" + script).path }

    /// A fresh, empty directory for one test.
    public static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "rezero-tests-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion, capturing its output.
public func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                       directory: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes concurrently so neither fills up and blocks the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errBox.data, as: UTF8.self))
}

public func rezero(_ arguments: [String], environment: [String: String] = [:], directory: String? = nil) throws -> ProcessResult {
    try runProcess(Paths.rezero, arguments, environment: environment, directory: directory)
}

/// The flags this machine's mpirun needs: root, oversubscription, one BLAS thread per rank.
public var mpirunFlags: [String] {
    var flags = ["--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS=1"]
    if getuid() == 0 { flags.append("--allow-run-as-root") }
    return flags
}

/// `mpirun -np N rezero …`.
public func mpirun(_ ranks: Int, _ arguments: [String]) throws -> ProcessResult {
    try runProcess("/usr/bin/mpirun", mpirunFlags + ["-np", String(ranks), Paths.rezero] + arguments,
                   environment: ["PMIX_MCA_gds": "hash"])
}

/// A checkpoint's tensors as Float arrays by name.
public func tensors(_ path: String) throws -> [String: [Float]] {
    let file = try SafeTensors.read(path: path)
    var out: [String: [Float]] = [:]
    for name in file.names { out[name] = file.values(name) }
    return out
}

/// A model's parameters as Float arrays by tensor name.
public func namedTensors(_ model: Model<Float>) -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    for spec in model.layout.tensors {
        out[spec.name] = Array(UnsafeBufferPointer(start: model.parameters + spec.offset, count: spec.count))
    }
    return out
}

/// Per tensor, max |a − b| / max |a|; the worst tensor and its value. Normalizing by the tensor's
/// scale keeps elements that sit near zero from dominating (Adam makes tiny values noisy).
public func worstTensorDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> (tensor: String, difference: Double) {
    var worst = ("", 0.0)
    for (name, x) in a {
        guard let y = b[name], y.count == x.count else { return (name + " (missing or reshaped)", .infinity) }
        let scale = x.reduce(0.0) { max($0, abs(Double($1))) }
        let diff = zip(x, y).reduce(0.0) { max($0, abs(Double($1.0) - Double($1.1))) }
        let relative = scale == 0 ? diff : diff / scale
        if relative > worst.1 { worst = (name, relative) }
    }
    return worst
}
