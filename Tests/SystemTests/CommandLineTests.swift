import XCTest
@testable import ReZero
import TestSupport

/// The `rezero` executable as a user runs it.
final class CommandLineTests: XCTestCase {
    static let tiny = ["--layers", "1", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                       "--eval-bytes", "2048", "--threads", "1"]

    func expectFailure(_ args: [String], mentions text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try rezero(args)
        XCTAssertNotEqual(result.status, 0, "\(args)", file: file, line: line)
        XCTAssertTrue(result.stderr.contains(text), "stderr for \(args): \(result.stderr) stdout: \(result.stdout) status \(result.status)", file: file, line: line)
    }

    func testInvalidFlagsExitNonZeroNamingFlagAndValue() throws {
        let dir = Paths.temporaryDirectory("flags")
        try expectFailure(["train", "--d-model", "64", "--heads", "5", "--run-dir", dir], mentions: "--heads 5: must divide --d-model 64")
        try expectFailure(["train", "--seq-len", "0", "--run-dir", dir], mentions: "--seq-len 0")
        try expectFailure(["train", "--variant", "sandwich", "--run-dir", dir], mentions: "--variant")
        try expectFailure(["train", "--data", dir + "/missing.txt", "--run-dir", dir], mentions: "--data \(dir)/missing.txt: no such file")
        let short = dir + "/short.txt"
        FileManager.default.createFile(atPath: short, contents: Data(repeating: 65, count: 300))
        try expectFailure(["train", "--data", short, "--seq-len", "64", "--run-dir", dir], mentions: "--seq-len + 1 = 65")
        try expectFailure(["train", "--threads", "0", "--run-dir", dir], mentions: "--threads 0")
        try expectFailure(["train", "--lr=-1", "--run-dir", dir], mentions: "--lr -1.0: must be positive")
        try expectFailure(["eval", "--checkpoint", dir + "/none.safetensors"], mentions: "none.safetensors: no such file")
        // sample has no --resume: its error names the flag it was given.
        let empty = dir + "/empty-run"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try expectFailure(["sample", "--run-dir", empty], mentions: "--run-dir \(empty): no valid checkpoint")
        try expectFailure(["compare", "--runs", "rezero,,prenorm", "--out", dir + "/compare"], mentions: "--runs: '' is not VARIANT")
    }

    func testHelpDocumentsEveryTrainingFlagWithADefault() throws {
        let help = try rezero(["train", "--help"]).stdout
        for flag in ["--layers", "--d-model", "--heads", "--ff-mult", "--seq-len", "--batch-size", "--steps", "--lr",
                     "--warmup", "--schedule", "--weight-decay", "--clip", "--seed", "--variant", "--data", "--run-dir",
                     "--log-every", "--eval-every", "--accum-steps", "--threads", "--resume", "--debug"] {
            XCTAssertTrue(help.contains(flag), flag)
        }
        XCTAssertTrue(help.contains("90M/5M/5M"))
        let words = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(words.contains("α, biases and LayerNorm parameters are excluded from this layer adaptation"), "--optimizer help")
        XCTAssertTrue(words.contains("gpt2norm: prenorm with GPT-2's initialization"), "--variant help")
        // Every option that takes a value states its default in its own entry (--data and --resume
        // describe what their absence means instead).
        let entries = help.components(separatedBy: "\n  -").dropFirst().map { "-" + $0 }
        let valued = entries.filter { $0.prefix { $0 != "\n" }.contains("<") }
        XCTAssertGreaterThanOrEqual(valued.count, 25)
        for entry in valued where !entry.hasPrefix("--data ") && !entry.hasPrefix("--resume ") {
            let name = entry.prefix { !$0.isWhitespace }
            XCTAssertTrue(entry.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("(default:"),
                          "\(name) states no default")
        }
        // compare takes its variants from --runs: a --variant there is refused, so --help hides it.
        XCTAssertFalse(try rezero(["compare", "--help"]).stdout.contains("--variant"))
    }

    /// train → run directory files → eval, sample, inspect, and the safetensors file read by numpy.
    func testTrainEvalSampleInspect() throws {
        let dir = Paths.temporaryDirectory("e2e")
        let train = try rezero(["train"] + Self.tiny + ["--steps", "30", "--log-every", "10", "--eval-every", "15",
                                                        "--run-dir", dir + "/run"])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("built-in synthetic corpus"), train.stdout)
        XCTAssertTrue(train.stdout.contains("step 30/30"), train.stdout)
        XCTAssertTrue(train.stdout.contains("valid bpb"), train.stdout)
        let config = try TrainingConfig.decode(json: String(contentsOfFile: dir + "/run/config.json", encoding: .utf8))
        XCTAssertEqual(config.model.dModel, 16)
        let lines = try String(contentsOfFile: dir + "/run/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = lines.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let steps = records.filter { $0["loss"] != nil }
        XCTAssertEqual(steps.map { $0["step"] as! Int }, [1, 10, 20, 30])
        for key in ["step", "loss", "bpb", "lr", "grad_norm", "alpha", "tokens_per_s"] {
            XCTAssertNotNil(steps[0][key], key)
        }
        XCTAssertEqual((steps[0]["alpha"] as! [Double]).count, 1)
        XCTAssertEqual(records.filter { $0["valid_bpb"] != nil }.count, 2)
        let checkpoint = dir + "/run/ckpt-00000030.safetensors"
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))

        // `eval` on the checkpoint reproduces the trainer's own final validation figure.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/summary.json"))) as! [String: Any]
        let eval = try rezero(["eval", "--checkpoint", checkpoint, "--split", "valid", "--bytes", "2048", "--batch-size", "4", "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let result = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(result["bits_per_byte"] as! Double, summary["valid_bpb"] as! Double, accuracy: 1e-9)
        XCTAssertEqual(result["bytes_scored"] as? Int, 2047)
        let test = try rezero(["eval", "--checkpoint", checkpoint, "--split", "test"])
        XCTAssertEqual(test.status, 0, test.stderr)
        XCTAssertTrue(test.stdout.contains("test:"), test.stdout)

        // The continuation is a function of the seed: repeated with it, different with another.
        func sample(seed: Int) throws -> String {
            let result = try rezero(["sample", "--checkpoint", checkpoint, "--prompt", "the ", "--length", "40", "--seed", String(seed)])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.hasPrefix("the "), result.stdout)
            return String(result.stdout.dropFirst(4))
        }
        let continuation = try sample(seed: 1)
        XCTAssertGreaterThanOrEqual(continuation.count, 10, continuation)
        XCTAssertEqual(try sample(seed: 1), continuation)
        XCTAssertNotEqual(try sample(seed: 2), continuation)

        let inspect = try rezero(["inspect", checkpoint, "--values", "layers.0.alpha"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("step 30"))
        XCTAssertTrue(inspect.stdout.contains("layers.0.attn.qkv.weight"))
        XCTAssertTrue(inspect.stdout.contains("optim.v.head.bias"))
        let alpha = try XCTUnwrap(tensors(checkpoint)["layers.0.alpha"]?.first)
        XCTAssertTrue(inspect.stdout.contains(String(format: "layers.0.alpha = %.9g", alpha)), inspect.stdout)
        try checkReadableByNumpy(checkpoint, alpha: alpha)
    }

    /// --eval-context: training's periodic evaluation and `eval` use it, say so, and agree; every
    /// byte is still scored once; a context of --seq-len or more (or below 0) is an error naming it.
    func testEvalContextIsUsedReportedAndValidated() throws {
        let dir = Paths.temporaryDirectory("eval-context")
        let train = try rezero(["train"] + Self.tiny + ["--steps", "10", "--eval-every", "5", "--eval-context", "6",
                                                        "--run-dir", dir + "/run"])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("step 5 | valid bpb ") && train.stdout.contains(", eval context 6"), train.stdout)
        let config = try TrainingConfig.decode(json: String(contentsOfFile: dir + "/run/config.json", encoding: .utf8))
        XCTAssertEqual(config.evalContext, 6)
        let records = try MetricsLog.read(dir + "/run/metrics.jsonl").filter { $0.kind == .evaluation }
        XCTAssertEqual(records.map(\.step), [5, 10])
        XCTAssertEqual(records.map(\.evalContext), [6, 6])

        let checkpoint = dir + "/run/ckpt-00000010.safetensors"
        func eval(_ context: Int) throws -> [String: Any] {
            let out = try rezero(["eval", "--checkpoint", checkpoint, "--bytes", "2048", "--batch-size", "4",
                                  "--eval-context", String(context), "--json"])
            XCTAssertEqual(out.status, 0, out.stderr)
            return try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as! [String: Any]
        }
        let withContext = try eval(6), without = try eval(0)
        XCTAssertEqual(withContext["eval_context"] as? Int, 6)
        XCTAssertEqual(without["eval_context"] as? Int, 0)
        XCTAssertEqual(withContext["bytes_scored"] as? Int, 2047)
        XCTAssertEqual(without["bytes_scored"] as? Int, 2047)
        XCTAssertNotEqual(withContext["bits_per_byte"] as! Double, without["bits_per_byte"] as! Double)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/summary.json"))) as! [String: Any]
        XCTAssertEqual(withContext["bits_per_byte"] as! Double, summary["valid_bpb"] as! Double, accuracy: 1e-9)
        let text = try rezero(["eval", "--checkpoint", checkpoint, "--bytes", "2048", "--eval-context", "6"])
        XCTAssertTrue(text.stdout.contains("over 2047 bytes, eval context 6"), text.stdout)

        for bad in ["16", "-1"] {
            let out = try rezero(["eval", "--checkpoint", checkpoint, "--eval-context=\(bad)"])
            XCTAssertEqual(out.status, 2, out.stderr)
            XCTAssertTrue(out.stderr.contains("--eval-context \(bad)"), out.stderr)
        }
        let badTrain = try rezero(["train"] + Self.tiny + ["--eval-context", "16", "--run-dir", dir + "/bad"])
        XCTAssertEqual(badTrain.status, 2, badTrain.stderr)
        XCTAssertTrue(badTrain.stderr.contains("--eval-context 16: must be at least 0 and less than the model's --seq-len 16"), badTrain.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad/config.json"), "bad input writes nothing")
    }

    /// The file follows the safetensors layout: a few lines of numpy read it.
    func checkReadableByNumpy(_ path: String, alpha: Float) throws {
        let script = """
        import json, struct, sys
        import numpy as np
        raw = open(sys.argv[1], 'rb').read()
        n = struct.unpack('<Q', raw[:8])[0]
        header = json.loads(raw[8:8 + n])
        meta = header.pop('__metadata__')
        e = header['layers.0.alpha']
        a, b = e['data_offsets']
        alpha = np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').reshape(e['shape'])
        e = header['layers.0.attn.qkv.weight']
        a, b = e['data_offsets']
        w = np.frombuffer(raw[8 + n + a:8 + n + b], dtype='<f4').reshape(e['shape'])
        print(meta['step'], repr(float(alpha[0])), w.shape, json.loads(meta['config'])['model']['d_model'])
        """
        guard try runProcess("/usr/bin/env", ["python3", "-c", "import numpy"]).status == 0 else {
            throw XCTSkip("python3 with numpy is not available")
        }
        let out = try runProcess("/usr/bin/env", ["python3", "-c", script, path])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertEqual(out.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "30 \(Double(alpha)) (48, 16) 16")
    }

    /// At a temperature near 0, sampling is greedy decoding: p^(1/τ) underflows for every byte,
    /// so the distribution is computed from log-probabilities.
    func testSamplingAtLowTemperatureIsGreedy() throws {
        let dir = Paths.temporaryDirectory("temperature")
        let train = try rezero(["train"] + Self.tiny + ["--steps", "30", "--eval-every", "0", "--run-dir", dir])
        XCTAssertEqual(train.status, 0, train.stderr)
        func sample(_ temperature: String) throws -> String {
            let result = try rezero(["sample", "--run-dir", dir, "--prompt", "the ", "--length", "60", "--temperature", temperature])
            XCTAssertEqual(result.status, 0, result.stderr)
            return result.stdout
        }
        let greedy = try sample("0")
        XCTAssertEqual(try sample("0.0001"), greedy)
        XCTAssertEqual(try sample("1e-30"), greedy)
    }

    func testGradcheckCommandPassesForAllVariants() throws {
        let result = try rezero(["gradcheck"])
        XCTAssertEqual(result.status, 0, result.stdout)
        for variant in Variant.allCases { XCTAssertTrue(result.stdout.contains("\(variant.rawValue), gelu"), variant.rawValue) }
        XCTAssertTrue(result.stdout.contains("layers.1.alpha"))
        XCTAssertTrue(result.stdout.contains(": pass"))
    }

    /// `rezero bench … --json` with a model of `layers`, `width`, `heads`, `sequence` and `batch`.
    func bench(_ layers: Int, _ width: Int, _ heads: Int, _ sequence: Int, _ batch: Int, steps: Int, threads: Int,
               _ extra: [String] = []) throws -> Benchmark.Result {
        let result = try rezero(["bench", "--layers", "\(layers)", "--d-model", "\(width)", "--heads", "\(heads)",
                                 "--seq-len", "\(sequence)", "--batch-size", "\(batch)", "--steps", "\(steps)",
                                 "--threads", "\(threads)", "--json"] + extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONCoding.decoder().decode(Benchmark.Result.self, from: Data(result.stdout.utf8))
    }

    /// What bench measured, checked by its structure, never by its speed: a time per measured
    /// step and the tokens/s they make, sgemm samples twice before the steps and after each
    /// quarter of them, on the threads the step uses, and MFU against the best of them.
    func testBenchReportsItsStepsAndPeakSamples() throws {
        let r = try bench(1, 64, 2, 32, 4, steps: 8, threads: 1)
        XCTAssertEqual([r.ranks, r.workersPerRank, r.blasThreadsPerWorker, r.peakThreadsPerRank], [1, 1, 1, 1])
        XCTAssertEqual(r.sgemmSamplesGflops.count, 2 + 4)
        XCTAssertTrue(r.fastestStepSeconds <= r.stepSeconds && r.stepSeconds <= r.slowestStepSeconds, "\(r)")
        XCTAssertEqual(r.tokensPerSecond, Double(4 * 32) / r.stepSeconds, accuracy: 1e-9 * r.tokensPerSecond)
        XCTAssertEqual(r.sgemmPeakGflops, max(r.sgemmSamplesGflops.max()!, r.modelGflops * r.stepSeconds / r.fastestStepSeconds),
                       accuracy: 1e-9 * r.sgemmPeakGflops)
        XCTAssertEqual(r.mfu, r.modelGflops / r.sgemmPeakGflops, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(r.mfu, 1)
        XCTAssertEqual(r.sgemmSampleSpread, (r.sgemmSamplesGflops.max()! - r.sgemmSamplesGflops.min()!)
                       / r.sgemmSamplesGflops.sorted()[2...3].reduce(0, +) * 2, accuracy: 1e-9)
    }

    /// The peak runs on the threads of the step: 2 workers (single-threaded BLAS each, side by
    /// side) or one worker on 2 BLAS threads (a batch of one sequence) sample 2 threads; before,
    /// a 2-worker bench sampled one and reported an MFU of 144%.
    func testPeakIsSampledOnTheStepsThreads() throws {
        let workers = try bench(2, 128, 4, 128, 32, steps: 4, threads: 2)
        XCTAssertEqual([workers.workersPerRank, workers.blasThreadsPerWorker, workers.peakThreadsPerRank], [2, 1, 2])
        let blas = try bench(2, 128, 4, 128, 1, steps: 4, threads: 2)
        XCTAssertEqual([blas.workersPerRank, blas.blasThreadsPerWorker, blas.peakThreadsPerRank], [1, 2, 2])
        for r in [workers, blas] { XCTAssertLessThanOrEqual(r.mfu, 1, "model \(r.modelGflops) GFLOP/s, peak \(r.sgemmPeakGflops)") }
    }

    /// Samples disturbed on purpose (each timed as if another process held the CPU for half a
    /// second more than the one before): far below what the steps reach, so the peak is the
    /// fastest step's rate, MFU stays ≤ 1, the spread is large, and bench says so.
    func testDisturbedPeakSamplesNeverGiveAnMFUAboveOne() throws {
        let r = try bench(2, 128, 4, 128, 32, steps: 2, threads: 1, ["--disturb-peak-samples", "500"])
        XCTAssertLessThanOrEqual(r.mfu, 1)
        XCTAssertGreaterThan(r.sgemmSampleSpread, Benchmark.noisySpread)
        XCTAssertTrue(r.warnings.contains { $0.contains("samples spread by") }, "\(r.warnings)")
        XCTAssertEqual(r.sgemmPeakGflops, r.modelGflops * r.stepSeconds / r.fastestStepSeconds, accuracy: 1e-9 * r.sgemmPeakGflops,
                       "the peak is the fastest step's rate")
        XCTAssertTrue(r.warnings.contains { $0.contains("above every sgemm sample") }, "\(r.warnings)")
        let text = try rezero(["bench", "--layers", "1", "--d-model", "64", "--heads", "2", "--seq-len", "32", "--batch-size", "4",
                               "--steps", "4", "--threads", "1", "--disturb-peak-samples", "20"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("\nwarning: the sgemm samples spread by"), text.stdout)
        XCTAssertTrue(text.stdout.contains("spread") && text.stdout.contains("6 samples"), text.stdout)
    }

    /// The steady-state training step allocates nothing: bench counts every malloc of the process
    /// (BLAS included) over its measured steps with a preloaded counter.
    func testTrainingStepMakesNoHeapAllocations() throws {
        let dir = Paths.temporaryDirectory("malloc")
        let compile = try runProcess("/usr/bin/env", ["cc", "-O2", "-shared", "-fPIC", "-o", dir + "/counter.so",
                                                      Paths.launch("bench-counters.c"), "-ldl"])
        guard compile.status == 0 else { throw XCTSkip("no C compiler to build the malloc counter: \(compile.stderr)") }
        for (variant, threads) in [("rezero", 1), ("prenorm", 1), ("rezero", 2), ("postnorm", 3)] {
            let result = try runProcess(Paths.rezero, ["bench", "--layers", "2", "--d-model", "32", "--heads", "2", "--seq-len", "32",
                                                       "--batch-size", "4", "--steps", "3", "--threads", String(threads),
                                                       "--variant", variant, "--json"],
                                        environment: ["LD_PRELOAD": dir + "/counter.so"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let r = try JSONCoding.decoder().decode(Benchmark.Result.self, from: Data(result.stdout.utf8))
            XCTAssertEqual(r.workersPerRank, threads)
            XCTAssertEqual(r.heapAllocationsPerStep, 0, "\(variant), \(threads) worker(s)")
            XCTAssertNotNil(r.sgemmSeconds, "the preloaded counters time sgemm from outside the binary")
        }
    }

    /// The genuine enwik8 prefix: a short run must learn well below the 8 bits/byte of ignorance.
    func testTrainsOnEnwik8Prefix() throws {
        guard FileManager.default.fileExists(atPath: Paths.enwik8Prefix) else {
            throw XCTSkip("\(Paths.enwik8Prefix) is absent: skipping the enwik8 run")
        }
        let dir = Paths.temporaryDirectory("enwik8")
        let result = try rezero(["train", "--data", Paths.enwik8Prefix, "--layers", "2", "--d-model", "64", "--heads", "2",
                                 "--seq-len", "64", "--batch-size", "16", "--steps", "600", "--lr", "3e-3", "--warmup", "30",
                                 "--eval-bytes", "65536", "--eval-every", "0", "--threads", "1", "--run-dir", dir])
        XCTAssertEqual(result.status, 0, result.stderr)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary.json"))) as! [String: Any]
        let valid = try XCTUnwrap(summary["valid_bpb"] as? Double)
        print("enwik8 prefix, 600 steps of a 2-layer d=64 model: valid \(valid) bits/byte")
        // Unigram byte entropy of enwik8 is about 5 bits; 600 steps must learn far more than that.
        XCTAssertLessThan(valid, 3.8)
    }
}

/// `rezero compare`: every setting of the grids and every seed in its own directory, tables
/// computed from those runs, studies read back (also without checkpoints), interrupted, extended.
final class CompareTests: XCTestCase {
    /// A one-layer study of 20 steps; `deep` leaves the layers to --depths.
    static let deep = ["compare", "--d-model", "16", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
                       "--eval-every", "5", "--eval-bytes", "2048", "--log-every", "100", "--steps", "20", "--target", "7.5"]
    static let common = deep + ["--layers", "1"]

    static func json(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// compare.json: a depth's rows by run name.
    static func rows(_ path: String, depth: Int = 0) throws -> [String: [String: Any]] {
        let depths = try XCTUnwrap(try json(path) as? [[String: Any]])
        let rows = try XCTUnwrap(depths[depth]["rows"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["run"] as! String, $0) })
    }

    func testSeedsAndGridsTrainEverySettingAndTheTableIsTheirs() throws {
        let dir = Paths.temporaryDirectory("compare-seeds"), out = dir + "/study"
        let study = Self.common + ["--runs", "postnorm+warmup,rezero", "--lr-grid", "1e-3,3e-2", "--warmup-grid", "2,5",
                                   "--seeds", "1,2", "--dropout", "0.1", "--threads", "2", "--out", out]
        let first = try rezero(study)
        XCTAssertEqual(first.status, 0, first.stderr)
        // Every run gets the rank's threads, not only the first (whose workers set BLAS to one thread).
        XCTAssertEqual(first.stdout.components(separatedBy: "1 rank(s) × 2 worker(s) × 1 BLAS thread(s)").count - 1, 6 + 2, first.stdout)
        let rows = try Self.rows(out + "/compare.json")
        for (run, warmups) in [("postnorm+warmup", ["warmup-2/", "warmup-5/"]), ("rezero", [""])] {
            let row = try XCTUnwrap(rows[run])
            XCTAssertEqual((row["tuning"] as? [Any])?.count, 2 * warmups.count, run)
            for lr in ["0.001", "0.03"] {
                for warmup in warmups {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(run)/lr-\(lr)/\(warmup)seed-1/result.json"), "\(run) \(lr) \(warmup)")
                }
            }
            // The chosen setting on both seeds; the row's mean and range are those of their own summaries.
            let chosen = try XCTUnwrap(row["chosen"] as? [String: Any])
            let seeds = try XCTUnwrap(row["seeds"] as? [[String: Any]])
            XCTAssertEqual(seeds.map { ($0["setting"] as! [String: Any])["seed"] as! Int }, [1, 2])
            let finals = try seeds.map { trial -> Double in
                let summary = try XCTUnwrap(try Self.json((trial["directory"] as! String) + "/summary.json") as? [String: Any])
                XCTAssertEqual((trial["setting"] as! [String: Any])["learning_rate"] as? Double, chosen["learning_rate"] as? Double)
                return try XCTUnwrap(summary["valid_bpb"] as? Double)
            }
            XCTAssertNotEqual(finals[0], finals[1], "\(run): seeds 1 and 2 trained the same model")
            let table = try String(contentsOfFile: out + "/compare.md", encoding: .utf8)
            let spread = String(format: "%.3f ± %.3f", (finals[0] + finals[1]) / 2, abs(finals[0] - finals[1]) / 2.squareRoot())
            XCTAssertTrue(table.contains("| \(run) | \(chosen["learning_rate"]!) |") && table.contains(spread), "\(spread)\n\(table)")
        }
        let table = try String(contentsOfFile: out + "/compare.md", encoding: .utf8)
        XCTAssertTrue(table.contains("| run | warm-up | lr 0.001 | lr 0.03 |"), table)
        XCTAssertTrue(table.contains("Compute: 8 runs"), table)
        for chart in ["valid_bpb.svg", "alpha.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + chart), chart)
        }

        // What a repository keeps of a study: no checkpoint. The same command reads every run back
        // and trains nothing; the tables come out the same.
        for path in try FileManager.default.subpathsOfDirectory(atPath: out)
            where path.hasSuffix(".safetensors") || path.hasSuffix("/latest") {
            try FileManager.default.removeItem(atPath: out + "/" + path)
        }
        let again = try rezero(study)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout.components(separatedBy: "read back from").count - 1, 8, again.stdout)
        XCTAssertFalse(again.stdout.contains("\ntraining "), again.stdout)
        XCTAssertEqual(try String(contentsOfFile: out + "/compare.md", encoding: .utf8), table)

        // --no-train with a wider grid and another seed: nothing trains, the missing settings are named.
        let report = try rezero(Self.common + ["--runs", "postnorm+warmup,rezero", "--lr-grid", "1e-3,3e-2,1e-2", "--warmup-grid", "2,5",
                                               "--seeds", "1,2,3", "--dropout", "0.1", "--out", out, "--no-train"])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertFalse(report.stdout.contains("\ntraining "), report.stdout)
        XCTAssertEqual(report.stdout.components(separatedBy: "not trained (--no-train)").count - 1, 3 + 2, report.stdout)
        XCTAssertTrue(report.stdout.contains("rezero, lr 0.01, seed 1: missing"), report.stdout)
    }

    func testAStoppedStudyResumesItsRunAndEveryDepthGetsItsTable() throws {
        let dir = Paths.temporaryDirectory("compare-stop"), out = dir + "/depths"
        // Steps of about 10 ms, so that the signal comes long before the first run's end.
        let long = ["compare", "--depths", "1,2", "--d-model", "64", "--heads", "2", "--seq-len", "64", "--batch-size", "8",
                    "--steps", "400", "--eval-every", "50", "--eval-bytes", "2048", "--log-every", "1", "--ckpt-every", "10",
                    "--target", "7.5", "--runs", "rezero,postnorm+warmup", "--threads", "1", "--out", out]
        let job = try BackgroundProcess(Paths.rezero, long, output: dir + "/output")
        defer { if job.process.isRunning { kill(job.pid, SIGKILL) } }
        let first = out + "/L1/rezero/lr-0.001/seed-1"
        // Whatever the machine's speed: the signal comes once the first run has a checkpoint.
        XCTAssertTrue(waitUntil(seconds: hangTimeout) { FileManager.default.fileExists(atPath: first + "/latest") && metricsRecords(first) >= 15 }, job.output)
        kill(job.pid, SIGTERM)
        XCTAssertTrue(job.wait(seconds: hangTimeout), "compare still running after SIGTERM: \(job.output)")
        XCTAssertEqual(job.process.terminationStatus, 0, job.output)
        XCTAssertTrue(job.output.contains("compare stopped by a signal"), job.output)
        XCTAssertTrue(job.output.contains("Resume with: the same rezero compare command"), job.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/compare.md"))

        let resumed = try rezero(long)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("== rezero, lr 0.001, seed 1: resuming from \(first)/ckpt-"), resumed.stdout)
        XCTAssertEqual(resumed.stdout.components(separatedBy: "== ").count - 1, 4, resumed.stdout)
        let table = try String(contentsOfFile: out + "/compare.md", encoding: .utf8)
        XCTAssertTrue(table.contains("| layers | run |") && table.contains("### 2 layers"), table)
        for chart in ["depth_steps.svg", "depth_valid.svg", "L1/valid_bpb.svg", "L2/valid_bpb.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + chart), chart)
        }
        let depthChart = try String(contentsOfFile: out + "/depth_steps.svg", encoding: .utf8)
        XCTAssertTrue(depthChart.contains(">1</text>") && depthChart.contains(">2</text>"), "depth ticks")
    }

    func testCompareReportsDivergenceAndRefusesBadGrids() throws {
        let dir = Paths.temporaryDirectory("compare-bad")
        // An absurd learning rate blows training up: the run is stopped and reported, not crashed.
        let blown = try rezero(Self.common + ["--runs", "rezero-alpha1", "--steps", "200", "--lr", "100", "--diverge-patience", "5",
                                              "--out", dir + "/blown"])
        XCTAssertEqual(blown.status, 0, blown.stderr)
        XCTAssertTrue(blown.stdout.contains("training diverged at step"), blown.stdout)
        XCTAssertTrue(blown.stdout.contains("| diverged (1/1) at step"), blown.stdout)

        for (flags, message) in [(["--runs", "rezero+cooldown"], "--runs: 'rezero+cooldown'"),
                                 (["--lr-grid", "1e-3,fast"], "--lr-grid: 'fast' is not a positive learning rate"),
                                 (["--warmup-grid", "100,-5"], "--warmup-grid: '-5' is not a non-negative number of steps"),
                                 (["--seeds", "1,1"], "--seeds: '1,1' lists a value twice"),
                                 (["--depths", "0,2"], "--depths: '0' is not a positive number of layers"),
                                 (["--seed", "3", "--seeds", "1,2"], "--seed and --seeds: give one of them")] {
            let bad = try rezero((flags.contains("--depths") ? Self.deep : Self.common) + flags + ["--out", dir + "/bad"])
            XCTAssertEqual(bad.status, 2, "\(flags): \(bad.stderr)")
            XCTAssertTrue(bad.stderr.contains(message), "\(flags): \(bad.stderr)")
        }
        let depthsAndLayers = try rezero(Self.common + ["--depths", "1,2", "--out", dir + "/bad"])
        XCTAssertEqual(depthsAndLayers.status, 2)
        XCTAssertTrue(depthsAndLayers.stderr.contains("--layers and --depths: give one of them"), depthsAndLayers.stderr)
    }
}
