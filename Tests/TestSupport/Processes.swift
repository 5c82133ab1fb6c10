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

    /// A script of launch/, or of $REZERO_LAUNCH (another checkout's launch/ directory, to show
    /// that a test fails with older scripts).
    public static func launch(_ script: String) -> String {
        let directory = ProcessInfo.processInfo.environment["REZERO_LAUNCH"] ?? packageRoot.appendingPathComponent("launch").path
        return directory + "/" + script
    }

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
    /// It was still running after the deadline it was given, and was killed.
    public var timedOut = false
}

/// Runs a command to completion, capturing its output. With a `deadline` (seconds), a command
/// still running then gets SIGTERM, and SIGKILL 5 s later: the result says it timed out, and its
/// output shows how far it got.
public func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                       directory: String? = nil, deadline: Double? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    final class Flag: @unchecked Sendable { var raised = false }
    let timedOut = Flag()
    if let deadline {
        let pid = process.processIdentifier
        DispatchQueue.global().asyncAfter(deadline: .now() + deadline) { [process] in
            guard process.isRunning else { return }
            timedOut.raised = true
            kill(pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: .now() + 5) { if process.isRunning { kill(pid, SIGKILL) } }
        }
    }
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
                         stderr: String(decoding: errBox.data, as: UTF8.self), timedOut: timedOut.raised)
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

/// The Euclidean norm.
public func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }

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

/// A process left running in the background, its output going to a file, for tests that signal
/// it or wait for it with a deadline.
public final class BackgroundProcess {
    public let process = Process()
    public let outputPath: String

    public init(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                output: String, directory: String? = nil) throws {
        outputPath = output
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["PMIX_MCA_gds": "hash"].merging(extra) { $1 }) { $1 }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        FileManager.default.createFile(atPath: output, contents: nil)
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = file
        process.standardError = file
        try process.run()
    }

    public var pid: pid_t { process.processIdentifier }
    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for the process to end; false if it still runs.
    public func wait(seconds: Double) -> Bool {
        waitUntil(seconds: seconds) { !process.isRunning }
    }
}

/// How long a test waits for what only a hang could keep from happening (a job to end, a step to
/// be logged, a checkpoint to appear): far beyond what it takes on a machine twice as slow or busy
/// (`launch/test --under-load`), so that no speed decides a test; passing tests never wait it out.
public let hangTimeout = 600.0

/// Polls `condition` every 50 ms for up to `seconds`; whether it came true.
@discardableResult
public func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(50_000)
    }
    return true
}

/// The pids of processes whose command line contains `marker` (a test's own run directory), so
/// that a test only ever signals processes it started.
public func processes(commandContaining marker: String) -> [pid_t] {
    let result = try? runProcess("/usr/bin/pgrep", ["-f", marker])
    return (result?.stdout ?? "").split(separator: "\n").compactMap { pid_t($0) }.filter { $0 != getpid() }
}

/// The pid of the given MPI rank among the `rezero` processes whose command line contains `marker`.
public func rankProcess(_ rank: Int, commandContaining marker: String) -> pid_t? {
    for pid in processes(commandContaining: "rezero.* train.*" + marker) {
        guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { continue }
        let variables = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
    }
    return nil
}

/// The number of records in a metrics.jsonl (0 when it does not exist yet).
public func metricsRecords(_ runDirectory: String) -> Int {
    ((try? String(contentsOfFile: runDirectory + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
}

/// Every file of a directory (not its subdirectories) with its contents.
public func files(in directory: String) throws -> [String: Data] {
    var files: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        files[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
    }
    return files
}
