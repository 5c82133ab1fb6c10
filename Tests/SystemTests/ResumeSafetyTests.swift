import XCTest
@testable import ReZero
import TestSupport

/// What a resumed or concurrent run must not do silently: train on other data, switch from the
/// built-in corpus to a data/enwik8 that appeared since, share its directory with another job,
/// judge divergence from a new reference, keep a stale index entry.
final class ResumeSafetyTests: XCTestCase {
    static let tiny = ["--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                       "--eval-bytes", "2048", "--eval-every", "0", "--threads", "1"]

    func train(_ arguments: [String], directory: String? = nil) throws -> ProcessResult {
        try rezero(["train"] + Self.tiny + arguments, directory: directory)
    }

    func randomFile(_ path: String, bytes: Int, seed: UInt64) {
        let data = Data((0..<bytes).map { UInt8(truncatingIfNeeded: CounterRandom.bits(seed: seed, stream: 9, counter: UInt64($0))) })
        FileManager.default.createFile(atPath: path, contents: data)
    }

    func testResumingOnOtherDataIsAnErrorNamingBothFiles() throws {
        let dir = Paths.temporaryDirectory("otherdata")
        let a = dir + "/a.bin", b = dir + "/b.bin"
        randomFile(a, bytes: 100_000, seed: 1)
        randomFile(b, bytes: 120_000, seed: 2)
        XCTAssertEqual(try train(["--data", a, "--steps", "3", "--run-dir", dir + "/run"]).status, 0)

        let other = try train(["--data", b, "--steps", "5", "--run-dir", dir + "/run", "--resume"])
        XCTAssertEqual(other.status, ExitStatus.usage.rawValue, other.stdout)
        XCTAssertTrue(other.stderr.contains(a) && other.stderr.contains(b) && other.stderr.contains("--allow-data-change"), other.stderr)

        // The same path with other bytes is other data too.
        let copy = dir + "/copy.bin"
        try FileManager.default.copyItem(atPath: a, toPath: copy)
        XCTAssertEqual(try train(["--data", copy, "--steps", "3", "--run-dir", dir + "/edited"]).status, 0)
        randomFile(copy, bytes: 100_000, seed: 3)
        let edited = try train(["--steps", "5", "--run-dir", dir + "/edited", "--resume"])
        XCTAssertEqual(edited.status, ExitStatus.usage.rawValue, edited.stdout)
        XCTAssertTrue(edited.stderr.contains(copy + " (100000 bytes"), edited.stderr)

        let allowed = try train(["--data", b, "--steps", "5", "--run-dir", dir + "/run", "--resume", "--allow-data-change"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stdout.contains("--allow-data-change: resuming on \(b)"), allowed.stdout)
    }

    /// A run on the built-in corpus stays on it, even once data/enwik8 exists where a new run would take it.
    func testBuiltInCorpusRunDoesNotSwitchToDataEnwik8OnResume() throws {
        let dir = Paths.temporaryDirectory("builtin")
        XCTAssertEqual(try train(["--steps", "3", "--run-dir", "run"], directory: dir).status, 0)
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        randomFile(dir + "/data/enwik8", bytes: 100_000, seed: 4)
        let resumed = try train(["--steps", "5", "--run-dir", "run", "--resume"], directory: dir)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming on the built-in synthetic corpus"), resumed.stdout)
        XCTAssertFalse(resumed.stdout.contains("no --data and no data/enwik8"), resumed.stdout)
        let config = try TrainingConfig.decode(json: String(contentsOfFile: dir + "/run/config.json", encoding: .utf8))
        XCTAssertNil(config.data, "config.json names no corpus file")
    }

    /// A second job on a run directory in use exits 2, naming the directory and the holder; the
    /// first runs on untouched, and once it is gone (even killed), the directory is free.
    func testSecondJobInTheSameRunDirectoryIsRefused() throws {
        let dir = Paths.temporaryDirectory("lock"), runDir = dir + "/run"
        let first = try BackgroundProcess(Paths.rezero, ["train"] + Self.tiny + ["--steps", "1000000", "--log-every", "1",
                                                                              "--run-dir", runDir], output: dir + "/first.log")
        defer { kill(first.pid, SIGKILL) }
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { metricsRecords(runDir) >= 3 }, first.output)
        for ranks in [1, 2] {
            let arguments = ["train"] + Self.tiny + ["--steps", "5", "--run-dir", runDir]
            let second = ranks == 1 ? try rezero(arguments) : try mpirun(2, arguments)
            XCTAssertEqual(second.status, ExitStatus.usage.rawValue, "\(ranks) rank(s): \(second.stdout)")
            XCTAssertTrue(second.stderr.contains("--run-dir \(runDir) is in use by another job (pid \(first.pid) on "),
                          "\(ranks) rank(s): \(second.stderr)")
        }
        let before = metricsRecords(runDir)
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { metricsRecords(runDir) > before + 3 }, "the first job goes on writing its metrics")
        kill(first.pid, SIGKILL)
        XCTAssertTrue(first.wait(seconds: hangTimeout), "the killed job is still running")
        let after = try train(["--steps", "3", "--run-dir", runDir])
        XCTAssertEqual(after.status, 0, "a killed holder leaves no lock behind: \(after.stderr)")
    }

    /// The divergence test compares with the run's first loss; a resumed run must keep comparing
    /// with it rather than with its own first (here lower) loss, or noise near the plateau ends it.
    func testDivergenceReferenceSurvivesResume() throws {
        let dir = Paths.temporaryDirectory("reference")
        let flags = ["--lr", "1e-2", "--schedule", "constant", "--warmup", "0", "--diverge-patience", "4", "--log-every", "1"]
        let whole = try train(flags + ["--steps", "80", "--run-dir", dir + "/whole"])
        XCTAssertEqual(whole.status, 0, whole.stdout)
        XCTAssertEqual(try train(flags + ["--steps", "40", "--run-dir", dir + "/split"]).status, 0)
        let resumed = try train(flags + ["--steps", "80", "--run-dir", dir + "/split", "--resume"])
        XCTAssertEqual(resumed.status, 0, "a resumed run diverges where the uninterrupted one does not: \(resumed.stdout)")
        let firstLoss = try XCTUnwrap(MetricsLog.read(dir + "/whole/metrics.jsonl").first?.loss)
        let state = try Checkpoint.load(path: dir + "/split/ckpt-00000080.safetensors").state
        XCTAssertEqual(state.initialLoss, firstLoss)
        XCTAssertEqual(state, try Checkpoint.load(path: dir + "/whole/ckpt-00000080.safetensors").state)
    }

    /// checkpoints.json must not keep the bits/byte of a checkpoint that was since rewritten
    /// without an evaluation: --keep would prune by a number that no longer describes the file.
    func testRewrittenCheckpointDropsItsStaleBitsPerByte() throws {
        let dir = Paths.temporaryDirectory("index")
        let first = try train(["--steps", "6", "--eval-every", "2", "--ckpt-every", "2", "--keep", "10", "--run-dir", dir])
        XCTAssertEqual(first.status, 0, first.stderr)
        func index() throws -> [String: Double] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoints.json"))) as! [String: Double]
        }
        XCTAssertNotNil(try index()["ckpt-00000004.safetensors"])
        let rewritten = try train(["--steps", "6", "--ckpt-every", "2", "--keep", "10", "--lr", "0.01", "--run-dir", dir,
                                   "--resume", dir + "/ckpt-00000002.safetensors"])
        XCTAssertEqual(rewritten.status, 0, rewritten.stderr)
        let after = try index()
        XCTAssertNil(after["ckpt-00000004.safetensors"], "step 4 was rewritten unevaluated: \(after)")
    }
}
