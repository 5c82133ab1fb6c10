import XCTest
import ReZero
import TestSupport

/// Writes that fail — a full disk, a file-size limit, a path that cannot be replaced — never trap:
/// each is reported once, training goes on where that is safe, and the exit status (1) and
/// summary.json say what was not written.
final class WriteFailureTests: XCTestCase {
    static let tiny = ["train", "--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                       "--eval-bytes", "2048", "--eval-every", "0", "--threads", "1"]

    func summary(_ runDir: String) throws -> TrainingSummary {
        try JSONCoding.decoder().decode(TrainingSummary.self, from: Data(contentsOf: URL(fileURLWithPath: runDir + "/summary.json")))
    }

    /// A 16 KB file-size limit (SIGXFSZ ignored, so write(2) fails with EFBIG, as on a full disk):
    /// every checkpoint and, after about 60 steps, the metrics fail; the run still trains to its
    /// last step, leaves no partial line, and ends with status 1 and a summary of the losses.
    func testFileSizeLimitNeitherTrapsNorStopsTraining() throws {
        let dir = Paths.temporaryDirectory("fsize")
        for ranks in [1, 2] {
            let runDir = dir + "/\(ranks)"
            let command = (ranks == 1 ? [Paths.rezero] : ["/usr/bin/mpirun"] + mpirunFlags + ["-np", "2", Paths.rezero])
                + Self.tiny + ["--steps", "150", "--log-every", "1", "--ckpt-every", "5", "--run-dir", runDir]
            let result = try runProcess("/bin/bash", ["-c", "trap '' XFSZ; ulimit -f 16; exec \"$@\"", "bash"] + command,
                                        environment: ["PMIX_MCA_gds": "hash"])
            let output = result.stdout + result.stderr
            XCTAssertEqual(result.status, ExitStatus.failure.rawValue, "\(ranks) rank(s): \(output)")
            XCTAssertEqual(output.components(separatedBy: "metrics records are being lost").count - 1, 1, "reported once: \(output)")
            let text = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
            XCTAssertTrue(text.hasSuffix("\n"), "no partial line")
            let records = try MetricsLog.read(runDir + "/metrics.jsonl")
            XCTAssertGreaterThan(records.count, 20)
            XCTAssertLessThan(records.count, 150)
            let s = try summary(runDir)
            XCTAssertEqual(s.status, .completed)
            XCTAssertEqual(s.step, 150, "training went on to its last step")
            XCTAssertNil(s.checkpoint)
            let lost = s.lost ?? []
            XCTAssertTrue(lost.contains { $0.hasPrefix("metrics.jsonl: ") && $0.contains("File too large") }, "\(lost)")
            XCTAssertTrue(lost.contains { $0.hasPrefix("the checkpoint at step 5 ") }, "\(lost)")
            XCTAssertTrue(lost.contains { $0.hasPrefix("the final checkpoint at step 150 ") }, "\(lost)")
            XCTAssertTrue(CheckpointDirectory(runDir).checkpoints().isEmpty)
            XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: runDir).contains { $0.contains(".tmp-") })
        }
    }

    /// Each file a run writes, made impossible to write by a directory in its place: what the run
    /// can do without it, it does; the exit status is 1 and the message names the file.
    func testEveryFileThatCannotBeWrittenIsNamed() throws {
        let dir = Paths.temporaryDirectory("blocked")
        for blocked in ["config.json", "metrics.jsonl", "latest", "checkpoints.json", "summary.json"] {
            let runDir = dir + "/" + blocked
            try FileManager.default.createDirectory(atPath: runDir + "/" + blocked, withIntermediateDirectories: true)
            let result = try rezero(Self.tiny + ["--steps", "6", "--ckpt-every", "3", "--run-dir", runDir])
            let output = result.stdout + result.stderr
            XCTAssertEqual(result.status, ExitStatus.failure.rawValue, "\(blocked): \(output)")
            XCTAssertTrue(output.contains(runDir + "/" + blocked), "\(blocked) is named: \(output)")
            let checkpoints = CheckpointDirectory(runDir).checkpoints().map { URL(fileURLWithPath: $0).lastPathComponent }
            switch blocked {
            case "config.json", "metrics.jsonl":
                // Nothing can be recorded: the run stops before its first step.
                XCTAssertFalse(output.contains("step 1/6"), output)
            case "latest":
                // A checkpoint that `latest` cannot name is removed: no newer file shadows the one it names.
                XCTAssertEqual(checkpoints, [])
                XCTAssertTrue((try summary(runDir).lost ?? []).contains { $0.contains("final checkpoint at step 6") })
            case "checkpoints.json":
                XCTAssertEqual(checkpoints, ["ckpt-00000003.safetensors", "ckpt-00000006.safetensors"])
                XCTAssertNoThrow(try Checkpoint.load(path: runDir + "/ckpt-00000006.safetensors"))
                XCTAssertTrue((try summary(runDir).lost ?? []).contains { $0.hasPrefix("checkpoints.json not updated") })
            default:
                XCTAssertEqual(checkpoints, ["ckpt-00000003.safetensors", "ckpt-00000006.safetensors"])
                XCTAssertEqual(try String(contentsOfFile: runDir + "/latest", encoding: .utf8), "ckpt-00000006.safetensors\n")
            }
        }
    }
}
