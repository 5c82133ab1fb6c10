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
                // Rates that overflow Float would put infinities into the model (and its checkpoints).
                ("lr overflows Float", ["train"] + Self.tiny + ["--steps", "3", "--lr", "1e39", "--warmup", "0", "--ckpt-every", "1"],
                 .usage, "--lr 1e+39: overflows Float"),
                ("α rate overflows Float", ["train"] + Self.tiny + ["--steps", "3", "--lr", "1e38", "--alpha-lr-mult", "10",
                                                                     "--warmup", "0", "--ckpt-every", "1"], .usage, "--alpha-lr-mult 10.0"),
                ("decay overflows Float", ["train"] + Self.tiny + ["--steps", "3", "--lr", "3e38", "--weight-decay", "2",
                                                                    "--warmup", "0", "--ckpt-every", "1"], .usage, "--weight-decay 2.0"),
                ("one eval byte", ["train"] + Self.tiny + ["--steps", "3", "--eval-bytes", "1"], .usage, "--eval-bytes 1"),
                ("--debug meets a NaN", ["train"] + Self.tiny + ["--steps", "5", "--lr", "1e30", "--warmup", "0", "--debug"],
                 .diverged, "--debug found a"),
            ]
            for c in cases {
                let runDir = dir + "/\(ranks)-\(c.name.filter { $0.isLetter })"
                let result = try run(ranks: ranks, c.arguments + ["--run-dir", runDir])
                XCTAssertEqual(result.status, c.status.rawValue, "\(c.name) on \(ranks) rank(s): \(result.stdout)\(result.stderr)")
                if !c.message.isEmpty {
                    XCTAssertTrue((result.stdout + result.stderr).contains(c.message), "\(c.name) on \(ranks) rank(s): \(result.stderr)")
                }
                if c.status == .usage {
                    XCTAssertTrue(CheckpointDirectory(runDir).checkpoints().isEmpty, "\(c.name): bad input writes no checkpoint")
                }
                if c.status == .diverged {
                    let summary = try? JSONCoding.decoder().decode(TrainingSummary.self, from: Data(contentsOf: URL(fileURLWithPath: runDir + "/summary.json")))
                    XCTAssertEqual(summary?.status, .diverged, "\(c.name) on \(ranks) rank(s): summary.json says so")
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
            XCTAssertTrue(result.stderr.contains("the final checkpoint at step 3"), result.stderr)
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

    /// A rank that stops responding (here SIGSTOP) must not hang the job: the watchdog names it and
    /// the collective, the job exits 4, and launch/run --max-restarts restarts it from its checkpoint.
    func testStoppedRankAbortsTheJobWithStatus4AndIsRestarted() throws {
        let dir = Paths.temporaryDirectory("stalled")
        let watched = Self.tiny + ["--collective-timeout", "2", "--log-every", "100"]
        var stopped: [pid_t] = []
        defer { for pid in stopped { kill(pid, SIGKILL) } }
        /// SIGSTOP to rank 1 once the job has logged steps and written a checkpoint to restart from.
        func stopRankOne(of runDir: String) throws {
            XCTAssertTrue(waitUntil(seconds: hangTimeout) { metricsRecords(runDir) >= 3 && FileManager.default.fileExists(atPath: runDir + "/latest") },
                          "no checkpoint written")
            let rank1 = try XCTUnwrap(rankProcess(1, commandContaining: runDir), "rank 1 not found")
            stopped.append(rank1)
            kill(rank1, SIGSTOP)
        }

        let runDir = dir + "/mpirun"
        let job = try BackgroundProcess("/usr/bin/mpirun", mpirunFlags + ["-np", "2", Paths.rezero, "train"] + watched
                                        + ["--steps", "1000000", "--ckpt-every", "200", "--run-dir", runDir], output: dir + "/mpirun.log")
        try stopRankOne(of: runDir)
        let start = Date()
        guard job.wait(seconds: hangTimeout) else {
            kill(job.pid, SIGKILL)
            return XCTFail("the job hangs \(Int(hangTimeout)) s after rank 1 stopped: \(job.output)")
        }
        print(String(format: "a stopped rank ended the job in %.1f s", Date().timeIntervalSince(start)))
        XCTAssertEqual(job.process.terminationStatus, ExitStatus.stalled.rawValue, job.output)
        XCTAssertTrue(job.output.contains("rank(s) 1 did not answer") && job.output.contains("MPI_I"), job.output)

        let restarted = dir + "/launcher"
        let launcher = try BackgroundProcess(Paths.launch("run"), ["--np", "2", "--max-restarts", "1", "--bin", Paths.rezero, "--", "train"]
                                             + watched + ["--steps", "6000", "--ckpt-every", "200", "--run-dir", restarted],
                                             output: dir + "/launcher.log")
        try stopRankOne(of: restarted)
        guard launcher.wait(seconds: hangTimeout) else {
            for pid in processes(commandContaining: restarted) { kill(pid, SIGKILL) }
            return XCTFail("launch/run did not finish: \(launcher.output)")
        }
        XCTAssertEqual(launcher.process.terminationStatus, 0, launcher.output)
        XCTAssertTrue(launcher.output.contains("job failed with exit code 4; restart 1/1"), launcher.output)
        XCTAssertTrue(launcher.output.contains("resuming from"), launcher.output)
    }

    /// The other side: ranks waiting for rank 0's checkpoint (here 460 MB, about a second or more
    /// to write, with a 0.2 s timeout) probe it, hear that it is busy, and wait on; the job ends
    /// normally.
    func testLongCheckpointWriteIsNotAStall() throws {
        let dir = Paths.temporaryDirectory("busy")
        defer { try? FileManager.default.removeItem(atPath: dir) }  // a 460 MB checkpoint
        let result = try mpirun(2, ["train", "--layers", "3", "--d-model", "1024", "--heads", "8", "--seq-len", "16",
                                    "--batch-size", "2", "--steps", "2", "--eval-every", "0", "--eval-bytes", "2048",
                                    "--collective-timeout", "0.2", "--run-dir", dir])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("in checkpoint at step 2 has waited")
                      && result.stderr.contains("rank 0 is writing a checkpoint, waiting on"), result.stdout + result.stderr)
        XCTAssertNoThrow(try Checkpoint.load(path: dir + "/ckpt-00000002.safetensors"))
    }
}
