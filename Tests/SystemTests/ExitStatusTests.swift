import Foundation
import ReZero
import TestSupport
import XCTest

/// One exit status per kind of ending, the same on one rank and on two, and what launch/run
/// --max-restarts does with each: retry a runtime failure, never bad input or divergence.
final class ExitStatusTests: XCTestCase {
    static let tiny = ["--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                       "--eval-bytes", "2048", "--eval-every", "0", "--threads", "1"]

    func run(ranks: Int, _ arguments: [String]) throws -> ProcessResult {
        ranks == 1 ? try rezero(arguments) : try mpirun(ranks, arguments)
    }

    func testEachEndingHasItsStatusOnOneAndTwoRanks() throws {
        let dir = Paths.temporaryDirectory("status")
        for ranks in [1, 2] {
            let cases: [(name: String, arguments: [String], status: ExitStatus, message: String)] = [
                ("done", ["train"] + Self.tiny + ["--steps", "3"], .success, ""),
                ("bad value", ["train"] + Self.tiny + ["--steps", "3", "--lr=-1"], .usage, "--lr -1.0: must be positive"),
                ("rejected by the parser", ["train"] + Self.tiny + ["--variant", "sandwich"], .usage, "'sandwich' is invalid for '--variant"),
                ("unknown flag", ["train", "--layer", "3"], .usage, "Unknown option '--layer'"),
                ("diverged", ["train"] + Self.tiny + ["--steps", "100", "--lr", "100", "--variant", "rezero-alpha1",
                                                       "--diverge-patience", "3"], .diverged, "training diverged at step"),
            ]
            for c in cases {
                let result = try run(ranks: ranks, c.arguments + ["--run-dir", dir + "/\(ranks)-\(c.name)"])
                XCTAssertEqual(result.status, c.status.rawValue, "\(c.name) on \(ranks) rank(s): \(result.stdout)\(result.stderr)")
                if !c.message.isEmpty {
                    XCTAssertTrue((result.stdout + result.stderr).contains(c.message), "\(c.name) on \(ranks) rank(s): \(result.stderr)")
                }
            }
        }
    }

    /// A write that fails at the end (here the file-size limit, with SIGXFSZ ignored so that
    /// write(2) returns EFBIG) is a runtime failure: status 1, and summary.json says what was lost.
    func testLostFinalCheckpointIsARuntimeFailure() throws {
        let dir = Paths.temporaryDirectory("lost")
        for ranks in [1, 2] {
            let runDir = dir + "/\(ranks)"
            let command = (ranks == 1 ? [Paths.rezero] : ["/usr/bin/mpirun"] + mpirunFlags + ["-np", "2", Paths.rezero])
                + ["train"] + Self.tiny + ["--steps", "3", "--run-dir", runDir]
            let script = "trap '' XFSZ; ulimit -f 64; exec \"$@\""
            let result = try runProcess("/bin/bash", ["-c", script, "bash"] + command, environment: ["PMIX_MCA_gds": "hash"])
            XCTAssertEqual(result.status, ExitStatus.failure.rawValue, "\(ranks) rank(s): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("the final checkpoint at step 3 failed"), result.stderr)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runDir + "/summary.json"))) as! [String: Any]
            XCTAssertTrue((summary["message"] as? String ?? "").contains("File too large"), "\(summary)")
            XCTAssertNil(summary["checkpoint"])
        }
    }

    /// launch/run --max-restarts retries failures worth retrying only: bad input and divergence
    /// would fail the same way again.
    func testLauncherDoesNotRetryBadInputOrDivergence() throws {
        let dir = Paths.temporaryDirectory("noretry")
        let cases: [(name: String, arguments: [String], status: ExitStatus)] = [
            ("indivisible batch", Self.tiny + ["--batch-size", "5", "--steps", "3"], .usage),
            ("misspelt variant", Self.tiny + ["--variant", "rezer0"], .usage),
            ("diverged", Self.tiny + ["--steps", "100", "--lr", "100", "--variant", "rezero-alpha1", "--diverge-patience", "3"], .diverged),
        ]
        for c in cases {
            let result = try runProcess(Paths.launch("run"), ["--np", "2", "--max-restarts", "2", "--bin", Paths.rezero, "--", "train"]
                                        + c.arguments + ["--run-dir", dir + "/" + c.name])
            XCTAssertEqual(result.status, c.status.rawValue, "\(c.name): \(result.stderr)")
            XCTAssertFalse(result.stderr.contains("restart 1/2"), "\(c.name) was retried: \(result.stderr)")
        }
    }
}
