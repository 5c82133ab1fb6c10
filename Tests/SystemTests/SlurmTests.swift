import XCTest
@testable import ReZero
import TestSupport

/// launch/slurm.sbatch on a real Slurm (one node, brought up by launch/slurm-cluster for these
/// tests) submitted as users submit it: every way a job ends, the run directory its name gives,
/// resubmission and requeueing. The cases' jobs run side by side, all started by the class's
/// setUp; each test checks one case's ending. They skip, saying why, where Slurm cannot start.
///
/// The node offers 8 CPUs, so four 2-task jobs run at once on this machine's cores. KillWait is
/// 2 s, shorter than the big model's checkpoint: only plain `scancel` may rely on it. GraceTime
/// is 120 s, well above the 10–16 s a stop takes beside the other jobs, also on a machine twice
/// as slow or busy (a preempted job ends as soon as it has checkpointed, so the grace costs no
/// time); a requeued job may start again 10 s after its requeue.
final class SlurmTests: XCTestCase {
    /// 40 M parameters: a step takes a fraction of a second, a checkpoint (parameters and both
    /// Adam moments, 480 MB) seconds.
    static let big = ["--layers", "2", "--d-model", "1280", "--heads", "4", "--seq-len", "8", "--batch-size", "2",
                      "--eval-every", "0", "--eval-bytes", "64", "--log-every", "1"]
    static let small = ["--layers", "2", "--d-model", "32", "--heads", "2", "--seq-len", "32", "--batch-size", "8",
                        "--eval-every", "0", "--eval-bytes", "2048", "--log-every", "1"]
    /// Where the runs that are interrupted and resumed end, as the uninterrupted reference does.
    static let finalStep = 12
    static let forever = ["--steps", "1000000"]

    struct Ending: Sendable {
        let job: Int
        let fields: [String: String]
        let output: String
        let runDirectory: String
        /// From submission to the end of the job.
        let seconds: Double
        /// From the case's action (a scancel, a preempting job) to the end of the job.
        let stopSeconds: Double?
        /// summary.json as the job left it (a later job of the same name rewrites it).
        let summary: Data?
        /// The run directory's files just before this job was submitted, where a case kept them.
        var directoryBefore: [String: Data]?
        var state: String { fields["JobState"] ?? "unknown" }
        var exitCode: String { fields["ExitCode"] ?? "unknown" }
        var restarts: Int { Int(fields["Restarts"] ?? "") ?? 0 }
    }

    nonisolated(unsafe) static var cluster: Result<SlurmCluster, SlurmUnavailable>?
    nonisolated(unsafe) static var endings: [String: Result<Ending, SlurmError>] = [:]
    /// When every case must have ended (they take about a minute, `hangTimeout` allows ten): a
    /// Slurm that hangs fails the tests in bounded time.
    nonisolated(unsafe) static var deadline = Date.distantFuture
    static let submitDirectory = Paths.temporaryDirectory("slurm-jobs")

    override class func setUp() {
        super.setUp()
        let started = SlurmCluster.start("slurm", options: ["--port", "auto", "--cpus", "8", "--killwait", "2",
                                                            "--grace", "120", "--requeue-delay", "10"])
        cluster = started
        guard case .success(let slurm) = started else { return }
        let clock = Date()
        deadline = clock.addingTimeInterval(hangTimeout)
        endings = runConcurrently(cases(slurm))
        var report = String(format: "Slurm cases, all at once: %.1f s\n", Date().timeIntervalSince(clock))
        for (name, ending) in endings.sorted(by: { $0.key < $1.key }) {
            switch ending {
            case .success(let e):
                let summary = e.summary.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
                let run = summary.map { "\($0["status"] ?? "?") at step \($0["step"] ?? "?")" } ?? "no summary"
                let stops = e.output.matches(of: /stopped by signal at step (\d+)/).map { String($0.1) }
                let newest = CheckpointDirectory(e.runDirectory).checkpoints().last.map { URL(fileURLWithPath: $0).lastPathComponent }
                report += "  \(name): job \(e.job) \(e.state), exit \(e.exitCode), \(e.restarts) restart(s); stopped at step(s) "
                    + "\(stops.isEmpty ? "none" : stops.joined(separator: ", ")); run \(run); newest checkpoint \(newest ?? "none"); "
                    + String(format: "%.1f s", e.seconds)
                    + (e.stopSeconds.map { String(format: ", %.1f s from the action", $0) } ?? "") + "\n"
            case .failure(let error): report += "  \(name): \(error)\n"
            }
        }
        print(report, terminator: "")
    }

    override class func tearDown() {
        if case .success(let slurm) = cluster { slurm.stop() }
        try? FileManager.default.removeItem(atPath: submitDirectory)
        super.tearDown()
    }

    /// Each case is a chain of jobs, named by what they show; the ones that wait longest go first,
    /// as the node runs four jobs at a time.
    static func cases(_ slurm: SlurmCluster) -> [(name: String, run: @Sendable () throws -> [String: Ending])] {
        @Sendable func scancel(_ arguments: [String]) -> @Sendable (Int) throws -> Void {
            { job in _ = try slurm.run("scancel", arguments + [String(job)]) }
        }
        return [
            ("timelimit", { ["timelimit": try follow(slurm, name: "timelimit", ["-n", "2", "--time=1"], big + forever)] }),
            ("preempt", {
                // The victim and the preemptor each need more than half the node's memory, so
                // only the victim is in the preemptor's way.
                let half = ["--mem=\(try slurm.nodeMemory() / 2 + 1)"]
                let victim = try follow(slurm, name: "preempt", ["-n", "2", "-p", "low"] + half, big + ["--steps", "\(finalStep)"],
                                        act: { _ in _ = try slurm.submit(["-p", "high", "-o", "/dev/null", "--wrap", "true"] + half,
                                                                         from: submitDirectory) })
                return ["preempt": victim]
            }),
            ("reference", { ["reference": try follow(slurm, name: "reference", ["-N", "1", "-n", "2"], big + ["--steps", "\(finalStep)"])] }),
            ("term", {
                let stopped = try follow(slurm, name: "term", ["-n", "2"], big + ["--steps", "\(finalStep)"], act: scancel(["--signal=TERM"]))
                let resumed = try follow(slurm, name: "term", ["-n", "2"], big + ["--steps", "\(finalStep)", "--resume"])
                return ["term": stopped, "term-resumed": resumed]
            }),
            ("batch", { ["batch": try follow(slurm, name: "batch", ["-n", "2"], big + forever, act: scancel(["--batch", "--signal=TERM"]))] }),
            ("full", {
                ["full": try follow(slurm, name: "full", ["-n", "2"], big + forever + ["--ckpt-every", "3"], after: 4,
                                    act: scancel(["--full", "--signal=TERM"]))]
            }),
            ("cancel", { ["cancel": try follow(slurm, name: nil, ["-n", "2"], small + forever, act: scancel([]))] }),
            ("arch", {
                let first = try follow(slurm, name: "arch", ["-n", "2", "-c", "2"], small + ["--steps", "3"])
                let before = try files(in: first.runDirectory)
                var other = try follow(slurm, name: "arch", ["-n", "2"], small + ["--layers", "3", "--steps", "3"])
                other.directoryBefore = before
                return ["arch": first, "arch-other": other]
            }),
        ]
    }

    /// Submits launch/slurm.sbatch as `sbatch [-J name] options launch/slurm.sbatch arguments`; once
    /// the run has logged `after` steps, `act` on the job; then waits for its end.
    static func follow(_ slurm: SlurmCluster, name: String?, _ options: [String], _ arguments: [String], after steps: Int = 3,
                       act: ((Int) throws -> Void)? = nil) throws -> Ending {
        let start = Date()
        var acted: Date?
        let job = try slurm.submit((name.map { ["-J", $0] } ?? []) + options + [Paths.launch("slurm.sbatch")] + arguments,
                                   from: submitDirectory, environment: ["REZERO_BINARY": Paths.rezero])
        let runDirectory = submitDirectory + "/runs/" + (name ?? "rezero-\(job)")
        if let act {
            while loggedSteps(runDirectory) < steps {
                let state = slurm.job(job)["JobState"] ?? ""
                guard Date() < deadline, !SlurmCluster.endStates.contains(state) else {
                    _ = try? slurm.run("scancel", [String(job)])
                    throw SlurmError(message: "job \(job) (\(state)) did not log \(steps) steps: \(output(job))")
                }
                usleep(200_000)
            }
            acted = Date()
            try act(job)
        }
        let fields = try slurm.waitForEnd(job, deadline: deadline)
        return Ending(job: job, fields: fields, output: output(job), runDirectory: runDirectory,
                      seconds: Date().timeIntervalSince(start), stopSeconds: acted.map { Date().timeIntervalSince($0) },
                      summary: FileManager.default.contents(atPath: runDirectory + "/summary.json"))
    }

    static func loggedSteps(_ runDirectory: String) -> Int {
        let text = (try? String(contentsOfFile: runDirectory + "/metrics.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("\"loss\"") }.count
    }

    static func output(_ job: Int) -> String {
        (try? String(contentsOfFile: submitDirectory + "/rezero-\(job).out", encoding: .utf8)) ?? "(no output file)"
    }

    static func runConcurrently(_ cases: [(name: String, run: @Sendable () throws -> [String: Ending])])
        -> [String: Result<Ending, SlurmError>] {
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var endings: [String: Result<Ending, SlurmError>] = [:]
        }
        let results = Results(), group = DispatchGroup()
        for (name, run) in cases {
            group.enter()
            Thread {
                let outcome: [String: Result<Ending, SlurmError>]
                do {
                    outcome = try run().mapValues { .success($0) }
                } catch {
                    outcome = [name: .failure(error as? SlurmError ?? SlurmError(message: "\(error)"))]
                }
                results.lock.withLock { results.endings.merge(outcome) { $1 } }
                group.leave()
            }.start()
            usleep(100_000)  // submission order is the queue's order
        }
        group.wait()
        return results.endings
    }

    // MARK: - The cases

    func ending(_ name: String) throws -> Ending {
        switch Self.cluster {
        case .failure(let unavailable): throw XCTSkip(unavailable.reason)
        case nil: throw XCTSkip("the Slurm cluster was not started")
        case .success: break
        }
        guard let ending = Self.endings[name] else { throw SlurmError(message: "case \(name) did not run") }
        return try ending.get()
    }

    func summary(_ ending: Ending) throws -> [String: Any] {
        let data = try XCTUnwrap(ending.summary, "job \(ending.job) left no summary.json")
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func checkpoint(_ runDirectory: String, step: Int) -> String { runDirectory + String(format: "/ckpt-%08d.safetensors", step) }

    /// The job ended in `state` with `exitCode`, its output `saying` something where given; the run
    /// stopped with a checkpoint of the step it stopped at, which loads, and its output names the
    /// resubmission. The step.
    @discardableResult
    func assertStopped(_ ending: Ending, name: String, state: String, exitCode: String = "0:0", saying: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        XCTAssertEqual(ending.state, state, ending.output, file: file, line: line)
        XCTAssertEqual(ending.exitCode, exitCode, file: file, line: line)
        if let saying { XCTAssertTrue(ending.output.contains(saying), ending.output, file: file, line: line) }
        let summary = try summary(ending)
        XCTAssertEqual(summary["status"] as? String, "stopped", "\(summary)", file: file, line: line)
        let step = try XCTUnwrap(summary["step"] as? Int, file: file, line: line)
        let path = checkpoint(ending.runDirectory, step: step)
        XCTAssertEqual(summary["checkpoint"] as? String, "runs/\(name)/" + URL(fileURLWithPath: path).lastPathComponent,
                       file: file, line: line)
        XCTAssertEqual(try Checkpoint.load(path: path).state.step, step, file: file, line: line)
        XCTAssertTrue(ending.output.contains("stopped by signal at step \(step); checkpoint runs/\(name)/"), ending.output,
                      file: file, line: line)
        XCTAssertTrue(ending.output.contains("Resume with: sbatch -J \(name) launch/slurm.sbatch "), ending.output, file: file, line: line)
        return step
    }

    /// Parameters and Adam moments bit for bit, and the step.
    func assertSameCheckpoint(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try SafeTensors.decode(Data(contentsOf: URL(fileURLWithPath: a), options: .alwaysMapped), path: a)
        let y = try SafeTensors.decode(Data(contentsOf: URL(fileURLWithPath: b), options: .alwaysMapped), path: b)
        XCTAssertEqual(x.metadata["step"], y.metadata["step"], file: file, line: line)
        XCTAssertEqual(x.names, y.names, file: file, line: line)
        XCTAssertTrue(x.data == y.data, "\(a) and \(b) differ", file: file, line: line)
    }

    /// `sbatch -N 1 -n 2` (which the script's old --ntasks-per-node=1 refused): 2 ranks train
    /// and write their final checkpoint.
    func testTwoTasksTrainAndCheckpoint() throws {
        let reference = try ending("reference")
        XCTAssertEqual(reference.state, "COMPLETED", reference.output)
        XCTAssertEqual(reference.exitCode, "0:0")
        XCTAssertTrue(reference.output.contains("2 rank(s) × 1 worker(s) × 1 BLAS thread(s)"), reference.output)
        XCTAssertEqual(try summary(reference)["status"] as? String, "completed")
        XCTAssertEqual(try Checkpoint.load(path: checkpoint(reference.runDirectory, step: Self.finalStep)).state.step, Self.finalStep)
    }

    /// `scancel --signal=TERM`: the ranks checkpoint and the job ends COMPLETED; resubmitting
    /// `sbatch -J NAME launch/slurm.sbatch … --resume` continues to exactly the uninterrupted run.
    func testScancelSignalTermCheckpointsAndResubmissionResumesBitExactly() throws {
        let stopped = try ending("term"), resumed = try ending("term-resumed"), reference = try ending("reference")
        let step = try assertStopped(stopped, name: "term", state: "COMPLETED")
        XCTAssertLessThan(step, Self.finalStep)
        XCTAssertEqual(resumed.state, "COMPLETED", resumed.output)
        XCTAssertTrue(resumed.output.contains("resuming from runs/term/ckpt-\(String(format: "%08d", step)).safetensors at step \(step)"),
                      resumed.output)
        try assertSameCheckpoint(checkpoint(reference.runDirectory, step: Self.finalStep),
                                 checkpoint(resumed.runDirectory, step: Self.finalStep))
    }

    /// `scancel --batch --signal=TERM`, the way to stop a job for good: the batch shell asks the
    /// ranks through srun; no clock runs.
    func testScancelBatchSignalTermCheckpoints() throws {
        try assertStopped(try ending("batch"), name: "batch", state: "COMPLETED", saying: "got SIGTERM")
    }

    /// `scancel --signal=TERM --full` also signals srun, which answers SIGTERM by killing every
    /// rank at once: the job fails with srun's 137, and the last periodic checkpoint is what is left.
    func testScancelSignalTermFullLeavesOnlyThePeriodicCheckpoint() throws {
        let full = try ending("full")
        XCTAssertEqual(full.state, "FAILED", full.output)
        XCTAssertEqual(full.exitCode, "137:0")
        XCTAssertTrue(full.output.contains("srun: forcing job termination"), full.output)
        XCTAssertNil(full.summary)
        let newest = try XCTUnwrap(CheckpointDirectory(full.runDirectory).latestValid(warn: { _ in }))
        XCTAssertEqual(newest.state.step % 3, 0, "a periodic (--ckpt-every 3) checkpoint, not one at the stop")
        XCTAssertGreaterThanOrEqual(newest.state.step, 3)
    }

    /// Plain `scancel` (here without -J: the run gets runs/rezero-JOBID): the batch shell and the
    /// ranks get SIGTERM, SIGKILL follows KillWait later; a checkpoint that fits is written.
    func testScancelCheckpointsWithinKillWaitInADirectoryOfItsOwn() throws {
        let cancelled = try ending("cancel")
        XCTAssertEqual(cancelled.runDirectory, Self.submitDirectory + "/runs/rezero-\(cancelled.job)")
        try assertStopped(cancelled, name: "rezero-\(cancelled.job)", state: "CANCELLED",
                          saying: "run directory runs/rezero-\(cancelled.job)")
    }

    /// `sbatch --time=1`: the USR1 that #SBATCH --signal asks for comes before the limit (here at
    /// Slurm's first check, the limit being shorter than its 120 s), the ranks checkpoint, and the
    /// job ends COMPLETED before Slurm would kill it.
    func testOneMinuteTimeLimitEndsWithACheckpoint() throws {
        let timed = try ending("timelimit")
        try assertStopped(timed, name: "timelimit", state: "COMPLETED", saying: "got SIGUSR1")
        XCTAssertFalse(timed.output.contains("DUE TO TIME LIMIT"), timed.output)
    }

    /// A job in partition low preempted by one in high: the ranks get SIGTERM and checkpoint
    /// within GraceTime, the script requeues the job, and the next run resumes to exactly the
    /// uninterrupted run.
    func testPreemptionCheckpointsRequeuesAndResumesBitExactly() throws {
        let preempted = try ending("preempt"), reference = try ending("reference")
        XCTAssertEqual(preempted.state, "COMPLETED", preempted.output)
        XCTAssertEqual(preempted.exitCode, "0:0")
        XCTAssertEqual(preempted.restarts, 1)
        XCTAssertTrue(preempted.output.contains("preempted: requeueing job \(preempted.job)"), preempted.output)
        let stop = try XCTUnwrap(preempted.output.firstMatch(of: /stopped by signal at step (\d+)/).flatMap { Int($0.1) },
                                 preempted.output)
        XCTAssertLessThan(stop, Self.finalStep)
        XCTAssertTrue(preempted.output.contains("resuming from runs/preempt/ckpt-\(String(format: "%08d", stop)).safetensors at step \(stop)"),
                      preempted.output)
        XCTAssertEqual(try summary(preempted)["status"] as? String, "completed")
        try assertSameCheckpoint(checkpoint(reference.runDirectory, step: Self.finalStep),
                                 checkpoint(preempted.runDirectory, step: Self.finalStep))
    }

    /// A second job with the same -J and another architecture is refused with exit 2, naming the
    /// difference, and leaves the first run's directory as it was. (-c 2 gives each rank 2 threads.)
    func testSameNameWithAnotherArchitectureIsRefused() throws {
        let first = try ending("arch"), other = try ending("arch-other")
        XCTAssertEqual(first.state, "COMPLETED", first.output)
        XCTAssertTrue(first.output.contains("2 rank(s) × 2 worker(s) × 1 BLAS thread(s)"), first.output)
        XCTAssertEqual(other.state, "FAILED", other.output)
        XCTAssertEqual(other.exitCode, "2:0")
        XCTAssertTrue(other.output.contains("--run-dir runs/arch holds a run of another architecture (model.layers: 2 ≠ 3)"), other.output)
        XCTAssertEqual(try files(in: first.runDirectory), try XCTUnwrap(other.directoryBefore), "the refused job changed runs/arch")
    }

    /// Run outside a job, the script says how to submit it.
    func testScriptOutsideSlurmSaysHowToSubmit() throws {
        let result = try runProcess(Paths.launch("slurm.sbatch"), ["--steps", "1"], environment: ["SLURM_JOB_ID": ""])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("not inside a Slurm job; submit it with 'sbatch launch/slurm.sbatch"), result.stderr)
    }
}
