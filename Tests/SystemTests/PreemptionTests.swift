import XCTest
@testable import ReZero
import TestSupport

/// Preemption as schedulers and users deliver it: SIGTERM or SIGINT to launch/run, Ctrl-C to the
/// terminal's whole process group, SIGTERM to launch/simulate-hosts. mpirun kills its ranks a
/// second after it gets SIGTERM or SIGINT, so the model here is one whose checkpoint takes
/// seconds to write (38M parameters, 460 MB): every rank must still stop at the same step, one
/// checkpoint be written, and the job exit 0.
final class PreemptionTests: XCTestCase {
    static let wide = ["train", "--layers", "3", "--d-model", "1024", "--heads", "8", "--seq-len", "16", "--batch-size", "2",
                       "--steps", "1000000", "--log-every", "1", "--eval-every", "0", "--eval-bytes", "2048", "--ckpt-every", "0"]

    enum Target { case script, processGroup }

    /// Starts `script` (in a session of its own, as a terminal's foreground job leads its process
    /// group), waits for two logged steps, signals it, and checks the ending.
    func preempt(_ script: String, _ options: [String], _ arguments: [String], signal: Int32, to target: Target,
                 name: String) throws {
        let dir = Paths.temporaryDirectory("preempt-" + name.filter { $0.isLetter || $0.isNumber }), runDir = dir + "/run"
        let job = try BackgroundProcess("/usr/bin/setsid", ["--wait", Paths.launch(script)] + options + ["--bin", Paths.rezero, "--"]
                                        + arguments + ["--run-dir", runDir], output: dir + "/output")
        var launcher: pid_t?
        defer {
            // A job that did not stop: Ctrl-C twice lets the script clean up (simulated hosts'
            // namespaces); then whatever is left of it, found by its run directory, is killed.
            if job.process.isRunning, let launcher {
                kill(launcher, SIGINT)
                usleep(500_000)
                kill(launcher, SIGINT)
                _ = job.wait(seconds: 10)
            }
            for pid in processes(commandContaining: runDir) { kill(pid, SIGKILL) }
            _ = job.wait(seconds: 10)
            try? FileManager.default.removeItem(atPath: runDir)  // the 460 MB checkpoint
        }
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { metricsRecords(runDir) >= 2 }, "no training step logged: \(job.output)")
        // The script itself ("bash …/launch/run …"), not the setsid that started it.
        launcher = processes(commandContaining: "^bash \\S*launch/\(script) .*\(runDir)").first
        guard let launcher else { return XCTFail("\(script) not found") }
        kill(target == .script ? launcher : -getpgid(launcher), signal)
        let signalled = Date()
        guard job.wait(seconds: hangTimeout) else {
            return XCTFail("\(name): still running \(Int(hangTimeout)) s after the signal: \(job.output)")
        }
        let seconds = Date().timeIntervalSince(signalled)
        XCTAssertEqual(job.process.terminationStatus, 0, "\(name): \(job.output)")
        let checkpoints = CheckpointDirectory(runDir).checkpoints()
        XCTAssertEqual(checkpoints.count, 1, "\(name): \(checkpoints)")
        guard let file = checkpoints.first else { return }
        let checkpoint = try Checkpoint.load(path: file)
        let summary = try JSONCoding.decoder().decode(TrainingSummary.self, from: Data(contentsOf: URL(fileURLWithPath: runDir + "/summary.json")))
        XCTAssertEqual(summary.status, .stopped, name)
        XCTAssertEqual(summary.checkpoint, file, name)
        XCTAssertEqual(summary.step, checkpoint.state.step, "\(name): every rank stopped at the checkpoint's step")
        XCTAssertTrue(job.output.contains("stopped by signal at step \(checkpoint.state.step)"), job.output)
        let megabytes = Double((try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) / 1e6
        print(String(format: "%@: stopped at step %d with a %.0f MB checkpoint, exit 0, %.1f s after the signal",
                     name, checkpoint.state.step, megabytes, seconds))
    }

    func testSigtermToLaunchRunCheckpointsAndExitsZero() throws {
        try preempt("run", ["--np", "2"], Self.wide, signal: SIGTERM, to: .script, name: "SIGTERM to launch/run")
    }

    func testSigintToLaunchRunCheckpointsAndExitsZero() throws {
        try preempt("run", ["--np", "2"], Self.wide, signal: SIGINT, to: .script, name: "SIGINT to launch/run")
    }

    /// A terminal's Ctrl-C goes to every process of the foreground group, mpirun included unless
    /// launch/run keeps it out.
    func testCtrlCToTheProcessGroupCheckpointsAndExitsZero() throws {
        try preempt("run", ["--np", "2"], Self.wide, signal: SIGINT, to: .processGroup, name: "Ctrl-C to launch/run's group")
    }

    func testSigtermToSimulatedHostsCheckpointsAndExitsZero() throws {
        guard getuid() == 0 else { throw XCTSkip("simulated hosts need root (network namespaces)") }
        let tiny = ["train", "--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                    "--steps", "1000000", "--log-every", "1", "--eval-every", "0", "--eval-bytes", "2048", "--ckpt-every", "0"]
        try preempt("simulate-hosts", ["--hosts", "2", "--np", "2", "--threads", "1"], tiny, signal: SIGTERM, to: .script,
                    name: "SIGTERM to launch/simulate-hosts")
    }
}
