import XCTest
@testable import ReZero
import TestSupport

/// Checkpoints as a user meets them: stop and resume, preemption, crashes mid-write, bad files.
final class CheckpointTests: XCTestCase {
    static let model = ["--layers", "2", "--d-model", "32", "--heads", "2", "--seq-len", "32"]
    /// The warm-up schedule's rate depends on the step alone, so a run may change --steps on resume.
    static let training = ["--batch-size", "8", "--lr", "3e-3", "--warmup", "3", "--schedule", "warmup",
                           "--log-every", "1", "--eval-every", "0", "--eval-bytes", "2048", "--ckpt-every", "0",
                           "--threads", "1"]

    func train(ranks: Int = 1, _ args: [String], expectSuccess: Bool = true) throws -> ProcessResult {
        let full = ["train"] + Self.model + Self.training + args
        let result = ranks == 1 ? try rezero(full) : try mpirun(ranks, full)
        if expectSuccess { XCTAssertEqual(result.status, 0, result.stdout + result.stderr) }
        return result
    }

    /// metrics.jsonl training lines by step, as written (so equality is exact).
    func lossLines(_ runDir: String) throws -> [Int: String] {
        var out: [Int: String] = [:]
        for line in try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            guard let step = object["step"] as? Int, let loss = object["loss"] as? Double else { continue }
            out[step] = "\(loss) \(object["grad_norm"]!) \(object["alpha"] ?? "")"
        }
        return out
    }

    func checkpoint(_ runDir: String, step: Int) -> String { runDir + String(format: "/ckpt-%08d.safetensors", step) }

    func assertByteIdentical(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try SafeTensors.read(path: a), y = try SafeTensors.read(path: b)
        XCTAssertEqual(x.names, y.names, file: file, line: line)
        for name in x.names {
            XCTAssertEqual(x.values(name)!.withUnsafeBytes { Array($0) }, y.values(name)!.withUnsafeBytes { Array($0) },
                           name, file: file, line: line)
        }
    }

    func stopAndResume(ranks: Int, threads: Int = 1, dropout: Double = 0) throws {
        let dir = Paths.temporaryDirectory("resume\(ranks)-\(threads)-\(dropout)")
        let t = ["--threads", String(threads), "--dropout", String(dropout)]
        _ = try train(ranks: ranks, ["--steps", "20", "--run-dir", dir + "/whole"] + t)
        _ = try train(ranks: ranks, ["--steps", "10", "--run-dir", dir + "/split"] + t)
        let resumed = try train(ranks: ranks, ["--steps", "20", "--run-dir", dir + "/split", "--resume"] + t)
        XCTAssertTrue(resumed.stdout.contains("resuming from \(checkpoint(dir + "/split", step: 10)) at step 10"), resumed.stdout)
        XCTAssertTrue(resumed.stdout.contains("changed on resume: steps: 10 ≠ 20"), resumed.stdout)
        let whole = try lossLines(dir + "/whole"), split = try lossLines(dir + "/split")
        XCTAssertEqual(whole.count, 20)
        XCTAssertEqual(whole, split)
        try assertByteIdentical(checkpoint(dir + "/whole", step: 20), checkpoint(dir + "/split", step: 20))
    }

    func testStopAndResumeIsBitExactOnOneRank() throws { try stopAndResume(ranks: 1) }

    func testStopAndResumeIsBitExactOnTwoRanks() throws { try stopAndResume(ranks: 2) }

    func testStopAndResumeIsBitExactWithThreeWorkers() throws { try stopAndResume(ranks: 1, threads: 3) }

    /// Dropout masks are a function of (seed, step, sequence, position): a resumed run draws the
    /// ones the uninterrupted run did.
    func testStopAndResumeIsBitExactWithDropout() throws { try stopAndResume(ranks: 2, threads: 1, dropout: 0.2) }

    func testTwoRankCheckpointResumesOnOneRank() throws {
        let dir = Paths.temporaryDirectory("reshard")
        _ = try train(ranks: 2, ["--steps", "20", "--run-dir", dir + "/two"])
        _ = try train(ranks: 2, ["--steps", "10", "--run-dir", dir + "/mixed"])
        let resumed = try train(ranks: 1, ["--steps", "20", "--run-dir", dir + "/mixed", "--resume"])
        XCTAssertTrue(resumed.stdout.contains("saved by 2 rank(s)"), resumed.stdout)
        let worst = worstTensorDifference(try tensors(checkpoint(dir + "/two", step: 20)),
                                          try tensors(checkpoint(dir + "/mixed", step: 20)))
        XCTAssertLessThan(worst.difference, 1e-5, worst.tensor)
    }

    /// Run directories on node-local disks: only rank 0 finds the checkpoint, yet the job resumes
    /// as one, from rank 0's step, and ends where an uninterrupted run does.
    func testOnlyRankZeroFindsTheCheckpoint() throws {
        let dir = Paths.temporaryDirectory("localdisk")
        _ = try train(ranks: 2, ["--steps", "12", "--run-dir", dir + "/whole"])
        _ = try train(ranks: 2, ["--steps", "6", "--run-dir", dir + "/node0"])
        try FileManager.default.createDirectory(atPath: dir + "/node1", withIntermediateDirectories: true)
        let args = ["train"] + Self.model + Self.training + ["--steps", "12", "--resume", "--run-dir"]
        var flags = mpirunFlags + ["-np", "1", Paths.rezero] + args + [dir + "/node0"]
        flags += [":", "-np", "1", Paths.rezero] + args + [dir + "/node1"]
        let result = try runProcess("/usr/bin/mpirun", flags, environment: ["PMIX_MCA_gds": "hash"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        try assertByteIdentical(checkpoint(dir + "/whole", step: 12), checkpoint(dir + "/node0", step: 12))
    }

    /// SIGTERM to one rank: every rank stops at the same step, one checkpoint is written, exit 0;
    /// resuming reaches the parameters of an uninterrupted run.
    func testSigtermOnOneRankCheckpointsAndResumesExactly() throws {
        let dir = Paths.temporaryDirectory("sigterm")
        let flags = mpirunFlags + ["-np", "2"]
        let job = Process()
        job.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        job.arguments = flags + [Paths.rezero, "train"] + Self.model + Self.training +
            ["--steps", "1000000", "--run-dir", dir + "/run"]
        job.environment = ProcessInfo.processInfo.environment.merging(["PMIX_MCA_gds": "hash"]) { $1 }
        let output = Pipe()
        job.standardOutput = output
        job.standardError = output
        try job.run()
        // Wait for a few logged steps, then signal rank 1 only.
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { ((try? lossLines(dir + "/run"))?.count ?? 0) >= 5 }, "no steps logged")
        let rank1 = try XCTUnwrap(rankProcess(1, commandContaining: dir + "/run"), "rank 1 not found")
        kill(rank1, SIGTERM)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("stopped by signal at step"), text)
        let checkpoints = CheckpointDirectory(dir + "/run").checkpoints()
        XCTAssertEqual(checkpoints.count, 1, "\(checkpoints)")
        let stoppedAt = try Checkpoint.load(path: checkpoints[0]).state.step
        let target = stoppedAt + 5
        _ = try train(ranks: 2, ["--steps", "\(target)", "--run-dir", dir + "/run", "--resume"])
        _ = try train(ranks: 2, ["--steps", "\(target)", "--run-dir", dir + "/whole"])
        try assertByteIdentical(checkpoint(dir + "/whole", step: target), checkpoint(dir + "/run", step: target))
    }

    /// SIGKILL while a checkpoint is being written — the moment the writer's temporary file is
    /// seen, in a run that checkpoints every step — leaves `latest` naming a checkpoint that loads,
    /// and the next run removes the temporary file. A kill that lands only after the write ended
    /// (the file already renamed) does not count; the test goes on until four kills landed
    /// mid-write, whatever the machine's speed.
    func testKillDuringCheckpointWriteLeavesLatestValid() throws {
        let dir = Paths.temporaryDirectory("sigkill")
        var interruptedWrites = 0, attempts = 0
        func temporaryFiles(_ runDir: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: runDir)) ?? []).filter { $0.hasPrefix(".ckpt-") }
        }
        while interruptedWrites < 4 && attempts < 40 {
            let runDir = dir + "/run\(attempts)"
            attempts += 1
            defer { try? FileManager.default.removeItem(atPath: runDir) }  // 160 MB of checkpoints
            let job = Process()
            job.executableURL = URL(fileURLWithPath: Paths.rezero)
            job.arguments = ["train", "--layers", "2", "--d-model", "512", "--heads", "2", "--seq-len", "8", "--batch-size", "1",
                             "--steps", "100000", "--ckpt-every", "1", "--keep", "2", "--log-every", "1000",
                             "--eval-every", "0", "--eval-bytes", "1024", "--threads", "1", "--run-dir", runDir]
            job.standardOutput = FileHandle.nullDevice
            try job.run()
            XCTAssertTrue(waitUntil(seconds: hangTimeout) { !CheckpointDirectory(runDir).checkpoints().isEmpty }, "no checkpoint written")
            let deadline = Date().addingTimeInterval(hangTimeout)
            while temporaryFiles(runDir).isEmpty && Date() < deadline { usleep(500) }
            kill(job.processIdentifier, SIGKILL)
            job.waitUntilExit()
            guard !temporaryFiles(runDir).isEmpty else { continue }
            interruptedWrites += 1
            let latest = try String(contentsOfFile: runDir + "/latest", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertNoThrow(try Checkpoint.load(path: runDir + "/" + latest), "attempt \(attempts): latest = \(latest)")
            let resumed = try rezero(["train", "--run-dir", runDir, "--resume", "--steps", "1", "--eval-bytes", "1024"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertTrue(temporaryFiles(runDir).isEmpty, "the next run removes the dead writer's temporary file")
        }
        print("SIGKILL landed during a checkpoint write in \(interruptedWrites) of \(attempts) attempts")
        XCTAssertEqual(interruptedWrites, 4, "a kill never landed during a write in \(attempts) attempts")
    }

    func testBadCheckpointFilesGiveClearErrors() throws {
        let dir = Paths.temporaryDirectory("corrupt")
        _ = try train(["--steps", "3", "--run-dir", dir + "/run"])
        let good = checkpoint(dir + "/run", step: 3)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        func variant(_ name: String, _ data: Data) -> String {
            let path = dir + "/" + name
            FileManager.default.createFile(atPath: path, contents: data)
            return path
        }
        var flipped = bytes
        flipped[flipped.count - 100] ^= 0x40
        let foreign = SafeTensors.encode([], metadata: ["format": "pt"])
        let cases: [(String, String)] = [
            (variant("truncated.safetensors", bytes.prefix(bytes.count / 2)), "file truncated"),
            (variant("flipped.safetensors", flipped), "data checksum mismatch"),
            (variant("magic.safetensors", Data("PK\u{3}\u{4} this is a zip".utf8)), "not a safetensors file"),
            (variant("json.safetensors", Data([16, 0, 0, 0, 0, 0, 0, 0]) + Data("{\"a\": [1, 2,,}  ".utf8)), "header is not a JSON object"),
            (variant("foreign.safetensors", foreign), "not a rezero checkpoint"),
        ]
        for (path, problem) in cases {
            for command in [["eval", "--checkpoint", path], ["sample", "--checkpoint", path], ["inspect", path],
                            ["train", "--resume", path, "--steps", "4"]] {
                let result = try rezero(command)
                XCTAssertNotEqual(result.status, 0, "\(command)")
                XCTAssertTrue(result.stderr.contains(path) && result.stderr.contains(problem),
                              "\(command): \(result.stderr)")
            }
        }
        let mismatch = try rezero(["train", "--resume", good, "--d-model", "64", "--heads", "4", "--steps", "4"])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("architecture flags disagree with checkpoint"), mismatch.stderr)
        XCTAssertTrue(mismatch.stderr.contains("model.d_model: 32 ≠ 64") && mismatch.stderr.contains("model.heads: 2 ≠ 4"),
                      mismatch.stderr)
    }

    func testAutomaticResumeSkipsACorruptNewestCheckpoint() throws {
        let dir = Paths.temporaryDirectory("skip")
        _ = try train(["--steps", "6", "--ckpt-every", "3", "--run-dir", dir])
        let newest = checkpoint(dir, step: 6)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
        bytes[bytes.count - 5] ^= 1
        try bytes.write(to: URL(fileURLWithPath: newest))
        let resumed = try train(["--steps", "8", "--run-dir", dir, "--resume"])
        XCTAssertTrue(resumed.stdout.contains("warning: skipping checkpoint \(newest)"), resumed.stdout)
        XCTAssertTrue(resumed.stdout.contains("resuming from \(checkpoint(dir, step: 3)) at step 3"), resumed.stdout)
    }

    func testKeepRetainsNewestAndBest() throws {
        let dir = Paths.temporaryDirectory("keep")
        // With eval every step, checkpoints carry validation bits/byte; the best must survive pruning.
        // At this rate validation is best within the first steps and much worse after (6.8 bits/byte
        // at step 1, then above 10), so the best is a checkpoint that --keep 2 alone would delete.
        _ = try train(["--steps", "8", "--ckpt-every", "1", "--eval-every", "1", "--keep", "2", "--lr", "0.2", "--run-dir", dir])
        let remaining = CheckpointDirectory(dir).checkpoints().map { URL(fileURLWithPath: $0).lastPathComponent }
        XCTAssertTrue(remaining.contains("ckpt-00000008.safetensors"))
        XCTAssertTrue(remaining.contains("ckpt-00000007.safetensors"))
        // The best by the metrics log, which pruning does not touch (checkpoints.json forgets pruned files).
        let evaluations = try MetricsLog.read(dir + "/metrics.jsonl").filter { $0.validBpb != nil && $0.step >= 1 }
        let best = try XCTUnwrap(evaluations.min { $0.validBpb! < $1.validBpb! }).step
        XCTAssertTrue(remaining.contains(String(format: "ckpt-%08d.safetensors", best)), "\(remaining) lacks best, step \(best)")
        XCTAssertLessThan(best, 7, "the case needs a best older than the newest two")
        XCTAssertEqual(remaining.count, 3, "\(remaining), best at step \(best)")
        XCTAssertEqual(try String(contentsOfFile: dir + "/latest", encoding: .utf8), "ckpt-00000008.safetensors\n")
    }

    /// launch/run --max-restarts reruns a failed job with --resume until it succeeds.
    func testLauncherRestartsFromTheLatestCheckpoint() throws {
        let dir = Paths.temporaryDirectory("restart")
        // A stand-in binary that crashes the first time, like a node failure, then behaves.
        let flaky = dir + "/flaky"
        try """
        #!/usr/bin/env bash
        if [ ! -e \(dir)/crashed ]; then touch \(dir)/crashed; "\(Paths.rezero)" "$@" --steps 4 >/dev/null; exit 9; fi
        exec "\(Paths.rezero)" "$@"
        """.write(toFile: flaky, atomically: true, encoding: .utf8)
        chmod(flaky, 0o755)
        let launcher = Paths.packageRoot.appendingPathComponent("launch/run").path
        let result = try runProcess(launcher, ["--max-restarts", "2", "--bin", flaky, "--", "train"] + Self.model + Self.training +
                                    ["--steps", "8", "--run-dir", dir + "/run"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("restart 1/2"), result.stderr)
        XCTAssertTrue(result.stdout.contains("resuming from \(checkpoint(dir + "/run", step: 4)) at step 4"), result.stdout)
    }
}
