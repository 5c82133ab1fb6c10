import XCTest
@testable import ReZero
import TestSupport

/// Multi-rank tests: `rezero` under mpirun (MPI_Init runs once per process, so each job is its
/// own set of processes).
final class DistributedTests: XCTestCase {
    static let model = ["--layers", "2", "--d-model", "32", "--heads", "2", "--seq-len", "32"]
    static let training = ["--batch-size", "8", "--steps", "20", "--lr", "3e-3", "--warmup", "2", "--log-every", "1",
                           "--eval-every", "0", "--eval-bytes", "4096", "--ckpt-every", "0", "--threads", "1"]

    func train(ranks: Int, runDir: String, extra: [String] = []) throws -> ProcessResult {
        let args = ["train"] + Self.model + Self.training + ["--run-dir", runDir] + extra
        let result = ranks == 1 ? try rezero(args) : try mpirun(ranks, args)
        XCTAssertEqual(result.status, 0, result.stderr)
        return result
    }

    func losses(_ runDir: String) throws -> [Double] {
        let text = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    func finalTensors(_ runDir: String) throws -> [String: [Float]] {
        try tensors(runDir + "/ckpt-00000020.safetensors")
    }

    /// The global batch does not depend on how it is shared, so 1 thread, 2 and 4 ranks, 2 and 4
    /// workers in one process, and 2 ranks × 2 workers train the same model up to the order of
    /// floating-point sums — with dropout too, whose masks are keyed by the global sequence: the
    /// first step's gradient (its Adam moment m = 0.1·g) to 1e-5 of each tensor's largest element,
    /// the loss of every step to 1e-5, the parameters after 20 steps to 1e-3 by norm. Only the
    /// gradient is exact to rounding: Adam's update m/√v has the same size for an element whose
    /// gradient is tiny, where the order of a sum changes its low digits by a large fraction, so a
    /// few such elements (29 of layer 0's 4,096 fc1 weights with OpenBLAS's AVX-512 kernels, 4
    /// workers against one thread) drift by up to 1% of the tensor's scale in 20 steps.
    func testRanksAndWorkersTrainTheSameModel() throws { try ranksAndWorkersAgree(dropout: 0) }

    func testRanksAndWorkersTrainTheSameModelWithDropout() throws { try ranksAndWorkersAgree(dropout: 0.1) }

    func ranksAndWorkersAgree(dropout: Double) throws {
        let dir = Paths.temporaryDirectory("ranks-dropout\(dropout)")
        let extra = ["--dropout", String(dropout), "--ckpt-every", "1", "--keep", "20"]
        _ = try train(ranks: 1, runDir: dir + "/r1", extra: extra)
        let reference = try losses(dir + "/r1"), referenceTensors = try finalTensors(dir + "/r1")
        let referenceGradient = try tensors(dir + "/r1/ckpt-00000001.safetensors").filter { $0.key.hasPrefix("optim.m.") }
        XCTAssertEqual(reference.count, 20)
        XCTAssertLessThan(reference.last!, reference.first! - 0.1, "the model must actually train")
        XCTAssertEqual(referenceTensors.keys.filter { $0.hasPrefix("layers.") && $0.hasSuffix(".alpha") }.count, 2)
        for (ranks, workers) in [(2, 1), (4, 1), (1, 2), (1, 4), (2, 2)] {
            let name = "\(ranks) rank(s) × \(workers) worker(s)", runDir = dir + "/r\(ranks)w\(workers)"
            let out = try train(ranks: ranks, runDir: runDir, extra: extra + ["--threads", String(workers)])
            XCTAssertTrue(out.stdout.contains("\(name) × 1 BLAS thread(s)"), out.stdout)
            let l = try losses(runDir)
            XCTAssertEqual(l.count, reference.count)
            for (a, b) in zip(l, reference) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), name) }
            let gradient = worstTensorDifference(referenceGradient, try tensors(runDir + "/ckpt-00000001.safetensors"))
            XCTAssertLessThan(gradient.difference, 1e-5, "\(name), step 1: \(gradient.tensor)")
            let final = try finalTensors(runDir)
            for (tensor, values) in referenceTensors where !tensor.hasPrefix("optim.") {
                let difference = zip(values, final[tensor] ?? []).map { Double($0 - $1) }
                XCTAssertLessThan(norm(difference) / norm(values.map(Double.init)), 1e-3, "\(name), step 20: \(tensor)")
            }
        }
    }

    /// The same 2-rank job across two simulated hosts (network namespaces, TCP only) must train
    /// exactly the model the single-host job does: a sum of two values does not depend on the
    /// transport or the reduction algorithm.
    func testTwoSimulatedHostsEqualOneHost() throws {
        guard getuid() == 0 else { throw XCTSkip("simulated hosts need root (network namespaces)") }
        let probe = try runProcess("/usr/bin/env", ["ip", "netns", "add", "rezero-probe-\(getpid())"])
        guard probe.status == 0 else { throw XCTSkip("cannot create network namespaces here: \(probe.stderr)") }
        _ = try runProcess("/usr/bin/env", ["ip", "netns", "del", "rezero-probe-\(getpid())"])
        let dir = Paths.temporaryDirectory("hosts")
        _ = try train(ranks: 2, runDir: dir + "/local")
        let script = Paths.packageRoot.appendingPathComponent("launch/simulate-hosts").path
        let result = try runProcess(script, ["--hosts", "2", "--np", "2", "--threads", "1", "--bin", Paths.rezero, "--", "train"] +
                                    Self.model + Self.training + ["--run-dir", dir + "/hosts"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("2 simulated host(s)"), result.stderr)
        XCTAssertEqual(try losses(dir + "/hosts"), try losses(dir + "/local"))
        let local = try finalTensors(dir + "/local"), hosts = try finalTensors(dir + "/hosts")
        XCTAssertEqual(local, hosts)
        let leftovers = try runProcess("/usr/bin/env", ["ip", "netns", "list"]).stdout
        XCTAssertFalse(leftovers.contains("rz"), "namespaces left behind: \(leftovers)")
    }

    /// Overlapping the all-reduce with backward changes when the sums happen, not what they are.
    func testOverlappedAllReduceMatchesTheSequentialOne() throws {
        let dir = Paths.temporaryDirectory("overlap")
        _ = try train(ranks: 2, runDir: dir + "/overlap")
        _ = try train(ranks: 2, runDir: dir + "/sequential", extra: ["--no-overlap"])
        XCTAssertEqual(try losses(dir + "/overlap"), try losses(dir + "/sequential"))
        XCTAssertEqual(try finalTensors(dir + "/overlap"), try finalTensors(dir + "/sequential"))
    }

    func testRankWithDifferentConfigurationStopsTheJob() throws {
        let dir = Paths.temporaryDirectory("mismatch")
        var flags = mpirunFlags + ["-np", "1", Paths.rezero, "train"] + Self.model + Self.training + ["--run-dir", dir]
        flags += [":", "-np", "1", Paths.rezero, "train"] + Self.model + Self.training + ["--run-dir", dir, "--lr", "0.002"]
        // The job must end by itself, not hang on the rank that disagrees.
        let result = try runProcess("/usr/bin/mpirun", flags, environment: ["PMIX_MCA_gds": "hash"], deadline: hangTimeout)
        XCTAssertFalse(result.timedOut, "still running after \(Int(hangTimeout)) s: \(result.stdout + result.stderr)")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("learning_rate: 0.003 ≠ 0.002"), result.stderr)
    }

    func testGradientAllReduceIsExact() throws {
        for ranks in [1, 2, 4] {
            let result = ranks == 1 ? try rezero(["check-allreduce"]) : try mpirun(ranks, ["check-allreduce"])
            XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
            // One rank sums nothing; more take a single call, the buffer being below MPI's count limit.
            XCTAssertTrue(result.stdout.contains("over \(ranks) rank(s) of 1000003 floats in \(ranks == 1 ? 0 : 1) MPI call(s): 0 wrong"),
                          result.stdout)
        }
    }

    /// MPI counts are 32-bit: a buffer longer than one call may carry goes out in several. With
    /// calls of at most 1000 elements, a million-float all-reduce and broadcast stay exact.
    func testTransfersLongerThanOneCallAreSplitExactly() throws {
        for ranks in [2, 4] {
            let result = try mpirun(ranks, ["check-allreduce", "--chunk", "1000"])
            XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
            XCTAssertTrue(result.stdout.contains("over \(ranks) rank(s) of 1000003 floats in 1001 MPI call(s): 0 wrong"), result.stdout)
            XCTAssertTrue(result.stdout.contains("of 4000012 bytes in 4001 MPI call(s) of at most 1000: 0 wrong"), result.stdout)
        }
    }

    func testBatchThatDoesNotDivideIsAnError() throws {
        let result = try mpirun(4, ["train"] + Self.model + ["--batch-size", "6", "--steps", "1", "--run-dir",
                                                             Paths.temporaryDirectory("divide")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--batch-size 6: must be divisible by ranks × --accum-steps = 4 × 1"), result.stderr)
    }
}
