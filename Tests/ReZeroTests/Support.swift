import Foundation
import XCTest
@testable import ReZero

/// A buffer of random Doubles that outlives the closures using it.
final class Buffer {
    let pointer: UnsafeMutablePointer<Double>
    let count: Int
    init(_ count: Int, seed: UInt64, scale: Double = 1) {
        self.count = count
        pointer = .allocate(capacity: count)
        for i in 0..<count { pointer[i] = scale * CounterRandom.normal(seed: seed, stream: 77, counter: UInt64(i)) }
    }
    init(zeros count: Int) {
        self.count = count
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    deinit { pointer.deallocate() }
    var array: [Double] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    func zero() { pointer.update(repeating: 0, count: count) }
}

/// ∂f/∂x by the fourth-order central difference, in Double.
func numericGradient(of x: Buffer, step h: Double = 1e-4, _ f: () -> Double) -> [Double] {
    (0..<x.count).map { i in
        let saved = x.pointer[i]
        func at(_ d: Double) -> Double { x.pointer[i] = saved + d; return f() }
        let g = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
        x.pointer[i] = saved
        return g
    }
}

/// ‖a − b‖ / max(‖a‖, ‖b‖); 0 when both vanish.
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    var diff = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) { diff += (x - y) * (x - y); na += x * x; nb += y * y }
    let scale = max(na, nb).squareRoot()
    return scale == 0 ? 0 : diff.squareRoot() / scale
}

/// Σ w·y: a scalar whose gradient with respect to y is w.
func dot(_ y: UnsafePointer<Double>, _ w: Buffer) -> Double {
    (0..<w.count).reduce(0) { $0 + y[$1] * w.pointer[$1] }
}

enum Paths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    /// The genuine enwik8 prefix shared with the project, when present.
    static let enwik8Prefix = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/enwik8-prefix").path
    /// The `rezero` executable built beside this test bundle.
    static var rezero: String {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("rezero").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return packageRoot.appendingPathComponent(".build/release/rezero").path
    }

    static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "rezero-tests-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a command to completion, capturing its output.
func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
         directory: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in extra { environment[k] = v }
    process.environment = environment
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
    let errData = errBox.data
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

func rezero(_ arguments: [String], directory: String? = nil) throws -> ProcessResult {
    try runProcess(Paths.rezero, arguments, directory: directory)
}

/// `mpirun -np N rezero …` with the flags this machine needs (root, oversubscription, one BLAS
/// thread per rank).
func mpirun(_ ranks: Int, _ arguments: [String]) throws -> ProcessResult {
    var flags = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS=1"]
    if getuid() == 0 { flags.append("--allow-run-as-root") }
    return try runProcess("/usr/bin/mpirun", flags + [Paths.rezero] + arguments, environment: ["PMIX_MCA_gds": "hash"])
}

/// Reads a checkpoint's tensors as Float arrays by name.
func tensors(_ path: String) throws -> [String: [Float]] {
    let file = try SafeTensors.read(path: path)
    var out: [String: [Float]] = [:]
    for name in file.names { out[name] = file.values(name) }
    return out
}

/// Per tensor, max |a − b| / max |a|; the worst tensor and its value. Normalizing by the tensor's
/// scale keeps elements that sit near zero from dominating (Adam makes tiny values noisy).
func worstTensorDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> (tensor: String, difference: Double) {
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

func namedTensors(_ model: Model<Float>) -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    for spec in model.layout.tensors {
        out[spec.name] = Array(UnsafeBufferPointer(start: model.parameters + spec.offset, count: spec.count))
    }
    return out
}
