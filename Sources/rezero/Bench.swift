import ArgumentParser
import Foundation
import ReZero

/// Config A of the performance table: bench's architecture when no flag says otherwise.
enum BenchDefaults: ModelDefaults {
    static var model: ModelConfig { ModelConfig(layers: 6, dModel: 256, heads: 4, ffMult: 4, seqLen: 256) }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokens/s of the full training step, its time split, and MFU against the sgemm peak measured on the spot.",
        discussion: """
        MFU = model FLOP/s ÷ the cblas_sgemm peak: n = 1024 products on the step's own threads (every worker \
        at once), summed over ranks, sampled twice before the measured steps and after each quarter of them; \
        the best sample is the peak, unless the fastest step's model rate is higher (every sample was then \
        disturbed), so MFU never exceeds 1. The spread of the samples and of the step times, (max − min) / \
        median, is printed, with a warning above 10%: the machine was busy. Model FLOPs per token = \
        6·(matmul parameters) + 6·L·T·d. With launch/bench-counters.c preloaded (launch/bench does it), also \
        the heap allocations and the time inside sgemm per step.
        """)

    @OptionGroup var model: ModelOptions<BenchDefaults>
    @Option(name: .customLong("batch-size"), help: "Global batch in sequences.") var batchSize: Int = 16
    @Option(help: "Measured steps.") var steps: Int = 10
    @Option(name: .customLong("warmup-steps"), help: "Unmeasured steps first.") var warmupSteps: Int = 2
    @Option(help: "Corpus (default: the built-in synthetic corpus; the speed does not depend on it).") var data: String?
    @OptionGroup var threads: ThreadOptions
    @Flag(name: .customLong("no-overlap"), help: "Run the gradient all-reduce after backward instead of overlapping it.") var noOverlap = false
    @Flag(help: "Print the result as JSON.") var json = false
    @Option(name: .customLong("disturb-peak-samples"), help: ArgumentHelp("Test hook: time sgemm sample i (from 0) as if another process had held the CPU for (i + 1) × this many milliseconds during it.", visibility: .hidden))
    var peakDisturbance: Double = 0

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps \(steps): must be at least 1") }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps \(warmupSteps): must be non-negative") }
        guard peakDisturbance >= 0 && peakDisturbance <= 10_000 else {
            throw ValidationError("--disturb-peak-samples \(peakDisturbance): must be between 0 and 10000 milliseconds")
        }
    }

    func run() throws {
        runJob(threads: threads) { collective in
            var config = TrainingConfig()
            config.model = BenchDefaults.model
            model.apply(to: &config.model)
            config.batchSize = batchSize
            config.steps = warmupSteps + steps
            config.data = data
            config.overlapCommunication = !noOverlap
            let corpus = try data.map { try Corpus.load(path: $0) } ?? SyntheticSource.standard.corpus(bytes: 1 << 20)
            let trainer = try Trainer(config: config, corpus: corpus, collective: collective, threads: threads.count(collective))
            let result = try Benchmark.run(trainer: trainer, warmupSteps: warmupSteps, steps: steps,
                                           peakDisturbance: peakDisturbance / 1000)
            if collective.isRoot { json ? printJSON(result) : report(result, config.model) }
            return .success
        }
    }

    private func report(_ r: Benchmark.Result, _ m: ModelConfig) {
        print("config: \(m.variant.rawValue) L=\(m.layers) d=\(m.dModel) heads=\(m.heads) ff=\(m.ffMult)d T=\(m.seqLen) batch=\(batchSize); \(r.ranks) rank(s) × \(r.workersPerRank) worker(s) × \(r.blasThreadsPerWorker) BLAS thread(s), OpenBLAS \(r.blasKernels) kernels")
        print(String(format: "tokens/s        %.0f", r.tokensPerSecond))
        print(String(format: "model GFLOP/s   %.1f  (%.1f MFLOP/token)", r.modelGflops, m.trainingFlopsPerToken / 1e6))
        print(String(format: "sgemm peak      %.1f GFLOP/s (n = 1024 on %d thread(s) × %d rank(s); %d samples %.1f–%.1f, spread %.1f%%)",
                     r.sgemmPeakGflops, r.peakThreadsPerRank, r.ranks, r.sgemmSamplesGflops.count,
                     r.sgemmSamplesGflops.min() ?? 0, r.sgemmSamplesGflops.max() ?? 0, 100 * r.sgemmSampleSpread))
        print(String(format: "MFU             %.1f%%", 100 * r.mfu))
        print(String(format: "step            %.1f ms = forward %.1f + backward %.1f + all-reduce %.1f + optimizer %.1f",
                     1000 * r.stepSeconds, 1000 * r.forwardSeconds, 1000 * r.backwardSeconds,
                     1000 * r.allReduceSeconds, 1000 * r.optimizerSeconds))
        print(String(format: "step times      %.1f–%.1f ms over %d steps, spread %.1f%%", 1000 * r.fastestStepSeconds,
                     1000 * r.slowestStepSeconds, steps, 100 * r.stepSpread))
        if let sgemm = r.sgemmSeconds {
            print(String(format: "sgemm           %.1f ms per step on rank 0 (thread-seconds: threaded attention counts each thread)",
                         1000 * sgemm))
        }
        if let allocations = r.heapAllocationsPerStep {
            print(String(format: "heap allocations %.1f per measured step (whole process, rank 0)", allocations))
        }
        print(String(format: "peak RSS        %.1f MB (rank 0; parameters+gradients+moments+activations counted from shapes: %.1f MB, of which %.1f MB per worker)",
                     Double(r.peakResidentBytes) / 1e6, Double(r.countedBytes) / 1e6, Double(r.bytesPerWorker) / 1e6))
        print(String(format: "attention       %.2f MB per worker (log-sum-exps and one block of scores; no T×T probabilities kept)",
                     Double(r.attentionBytesPerWorker) / 1e6))
        for warning in r.warnings { print("warning: " + warning) }
    }
}
