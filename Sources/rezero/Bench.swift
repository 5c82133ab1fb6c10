import ArgumentParser
import Foundation
import ReZero

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokens/s of the full training step, its time split, and MFU against the sgemm peak measured on the spot.",
        discussion: "MFU = model FLOP/s ÷ measured cblas_sgemm FLOP/s (n = 1024, same thread count, summed over ranks). Model FLOPs per token = 6·(matmul parameters) + 6·L·T·d.")

    @OptionGroup var model: ModelOptions
    @Option(name: .customLong("batch-size"), help: "Global batch in sequences (default: 16).") var batchSize: Int = 16
    @Option(help: "Measured steps (default: 10).") var steps: Int = 10
    @Option(name: .customLong("warmup-steps"), help: "Unmeasured steps first (default: 2).") var warmupSteps: Int = 2
    @Option(help: "Corpus (default: the built-in synthetic corpus; the speed does not depend on it).") var data: String?
    @OptionGroup var threads: ThreadOptions
    @Flag(name: .customLong("no-overlap"), help: "Run the gradient all-reduce after backward instead of overlapping it.") var noOverlap = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        guard steps >= 1 else { fail("--steps \(steps): must be at least 1") }
        guard warmupSteps >= 0 else { fail("--warmup-steps \(warmupSteps): must be non-negative") }
        let collective: Collective
        do { collective = try Collective(mpi: ()) } catch { fail("cannot start MPI: \(error)") }
        threads.configure(collective)
        var config = TrainingConfig()
        config.model = ModelConfig(layers: 6, dModel: 256, heads: 4, ffMult: 4, seqLen: 256)
        model.apply(to: &config.model)
        config.batchSize = batchSize
        config.steps = warmupSteps + steps
        config.data = data
        config.overlapCommunication = !noOverlap
        do {
            let corpus = try data.map { try Corpus.load(path: $0) } ?? SyntheticSource.standard.corpus(bytes: 1 << 20)
            let trainer = try Trainer(config: config, corpus: corpus, collective: collective, runDirectory: nil, log: { _ in })
            let r = try Benchmark.run(trainer: trainer, warmupSteps: warmupSteps, steps: steps)
            if collective.isRoot {
                if json {
                    printJSON(r)
                } else {
                    let m = config.model
                    print("config: \(m.variant.rawValue) L=\(m.layers) d=\(m.dModel) heads=\(m.heads) ff=\(m.ffMult)d T=\(m.seqLen) batch=\(batchSize); \(r.ranks) rank(s) × \(r.threadsPerRank) thread(s)")
                    print(String(format: "tokens/s        %.0f", r.tokensPerSecond))
                    print(String(format: "model GFLOP/s   %.1f  (%.1f MFLOP/token)", r.modelGflops, m.trainingFlopsPerToken / 1e6))
                    print(String(format: "sgemm peak      %.1f GFLOP/s (measured now, all ranks)", r.sgemmPeakGflops))
                    print(String(format: "MFU             %.1f%%", 100 * r.mfu))
                    print(String(format: "step            %.1f ms = forward %.1f + backward %.1f + all-reduce %.1f + optimizer %.1f",
                                 1000 * r.stepSeconds, 1000 * r.forwardSeconds, 1000 * r.backwardSeconds,
                                 1000 * r.allReduceSeconds, 1000 * r.optimizerSeconds))
                    if let sgemm = r.sgemmSeconds {
                        let kernels = r.forwardSeconds + r.backwardSeconds - sgemm
                        print(String(format: "forward+backward: sgemm %.1f ms, Swift kernels (generic code specialized for Float) %.1f ms = %.1f%% of the step",
                                     1000 * sgemm, 1000 * kernels, 100 * kernels / r.stepSeconds))
                    }
                    if let allocations = r.heapAllocationsPerStep {
                        print(String(format: "heap allocations  %.1f per measured step (whole process, rank 0)", allocations))
                    }
                    print(String(format: "peak RSS        %.1f MB (rank 0; parameters+gradients+moments+activations counted from shapes: %.1f MB)",
                                 Double(r.peakRSSBytes) / 1e6, Double(r.countedBytes) / 1e6))
                }
            }
            collective.finalize()
        } catch {
            if collective.size > 1 { collective.abort("error: \(error)") }
            fail("\(error)")
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a checkpoint: config, step, α per layer, tensor table.")

    @Argument(help: "Checkpoint file (.safetensors).") var file: String
    @Option(help: "Also print every value of this tensor, one per line (%.9g).") var values: String?

    func run() throws {
        let loaded = loadCheckpoint(file, flag: "inspect")
        print("checkpoint \(file)")
        print("step \(loaded.state.step), tokens seen \(loaded.state.tokensSeen), saved by \(loaded.state.worldSize) rank(s), optimizer updates \(loaded.optimizerUpdates)")
        if let best = loaded.state.bestValidBitsPerByte { print(String(format: "best valid bits/byte %.4f", best)) }
        print("config \(loaded.config.json(pretty: true))")
        let layout = ParameterLayout(loaded.config.model)
        let alphas = layout.layers.enumerated().compactMap { l, o in
            o.alpha.map { _ in (l, loaded.file.values("layers.\(l).alpha")![0]) }
        }
        for (l, a) in alphas { print(String(format: "layers.%d.alpha = %.9g", l, a)) }
        print("tensors:")
        for name in loaded.file.names {
            let v = loaded.file.values(name)!
            let mean = v.reduce(0.0) { $0 + Double($1) } / Double(max(v.count, 1))
            let rms = (v.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(v.count, 1))).squareRoot()
            print(String(format: "  %-36@ F32 %-12@ mean %+.6e  rms %.6e", name as NSString,
                         "\(loaded.file.shapes[name]!)" as NSString, mean, rms))
        }
        if let values {
            guard let v = loaded.file.values(values) else { fail("--values \(values): no such tensor in \(file)") }
            print("values of \(values):")
            for x in v { print(String(format: "%.9g", x)) }
        }
    }
}
