import XCTest
@testable import ReZero
import TestSupport

/// What a resubmitted job relies on, without a scheduler: a run directory holds one
/// architecture's run, and a stopped run says how its launcher resumes it.
final class ResubmissionTests: XCTestCase {
    static let tiny = ["--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4", "--eval-every", "0",
                       "--eval-bytes", "2048", "--log-every", "1", "--threads", "1"]

    /// Another architecture in a run's directory is bad input (exit 2, naming the difference)
    /// and leaves every file as it was; the same architecture with other training flags is
    /// the same run going on.
    func testRunDirectoryOfAnotherArchitectureIsRefused() throws {
        let dir = Paths.temporaryDirectory("otherarch")
        let first = try rezero(["train", "--layers", "2", "--steps", "2", "--run-dir", dir] + Self.tiny)
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try files(in: dir)
        for resume in [[], ["--resume"]] {
            let other = try rezero(["train", "--layers", "3", "--steps", "4", "--run-dir", dir] + Self.tiny + resume)
            XCTAssertEqual(other.status, ExitStatus.usage.rawValue, "\(resume): \(other.stdout)")
            XCTAssertTrue(other.stderr.contains("model.layers: 2 ≠ 3"), other.stderr)
            XCTAssertEqual(try files(in: dir), before, "\(resume)")
        }
        let fresh = try rezero(["train", "--layers", "3", "--steps", "2", "--run-dir", dir + "/elsewhere"] + Self.tiny)
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        let refused = try rezero(["train", "--layers", "2", "--steps", "2", "--run-dir", dir + "/elsewhere"] + Self.tiny)
        XCTAssertTrue(refused.stderr.contains("--run-dir \(dir)/elsewhere holds a run of another architecture (model.layers: 3 ≠ 2)"),
                      refused.stderr)
        let resumed = try rezero(["train", "--layers", "2", "--steps", "4", "--lr", "1e-3", "--run-dir", dir, "--resume"] + Self.tiny)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming from \(dir)/ckpt-00000002.safetensors at step 2"), resumed.stdout)
    }

    /// A launcher names its own resubmission in REZERO_RESUME_COMMAND (launch/slurm.sbatch: the
    /// sbatch command); the stop message and summary.json give it instead of `rezero train --resume`.
    func testStopMessageNamesTheLaunchersResumeCommand() throws {
        let dir = Paths.temporaryDirectory("resumecommand")
        let command = "sbatch -J e8 launch/slurm.sbatch --steps 1000000 --resume"
        let job = Process()
        job.executableURL = URL(fileURLWithPath: Paths.rezero)
        job.arguments = ["train", "--layers", "1", "--steps", "1000000", "--run-dir", dir] + Self.tiny
        job.environment = ProcessInfo.processInfo.environment.merging(["REZERO_RESUME_COMMAND": command]) { $1 }
        let output = Pipe()
        job.standardOutput = output
        try job.run()
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { ((try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)) ?? "").count >= 10 },
                      "no metrics written")
        kill(job.processIdentifier, SIGTERM)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("Resume with: \(command)\n"), text)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        XCTAssertTrue((summary["message"] as? String ?? "").hasSuffix("Resume with: \(command)"), "\(summary)")
    }
}
