import CBLAS
import Foundation

/// Measurements for `rezero bench`.
public enum Benchmark {
    /// Best-of-`repeats` sgemm throughput for an n×n×n product with the current BLAS threads.
    public static func sgemmPeak(n: Int = 1024, repeats: Int = 5) -> Double {
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0...repeats {  // the first product warms up caches and threads
            var clock = Clock()
            Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n,
                       beta: 0, c: &c, ldc: n)
            best = Swift.min(best, clock.lap())
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    /// Peak resident set size of this process in bytes (VmHWM).
    public static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    public struct Result: Codable, Sendable {
        public var ranks: Int, threadsPerRank: Int
        public var tokensPerSecond: Double
        public var modelGflops: Double, sgemmPeakGflops: Double, mfu: Double
        public var forwardSeconds: Double, backwardSeconds: Double, allReduceSeconds: Double, optimizerSeconds: Double
        public var stepSeconds: Double
        /// Time inside sgemm per step (rank 0); the rest of forward + backward is the Swift kernels.
        /// nil when attention ran threaded (the timer does not follow threads).
        public var sgemmSeconds: Double?
        public var peakRSSBytes: Int, countedBytes: Int
        /// Heap allocations per measured step on rank 0, when a counter is preloaded (nil otherwise).
        public var heapAllocationsPerStep: Double?
    }

    /// The allocation count of Tests/Support/malloc_counter.c when it is preloaded.
    static func mallocCalls() -> Int? {
        guard let symbol = dlsym(nil, "rezero_malloc_calls") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) () -> Int).self)()
    }

    /// Times `steps` training steps after `warmupSteps`, averaging the per-phase split; the
    /// sgemm peak is that of all ranks together (per-rank peak × ranks).
    public static func run(trainer: Trainer, warmupSteps: Int, steps: Int) throws -> Result {
        let collective = trainer.collective
        let peakPerRank = sgemmPeak()
        var peaks = [peakPerRank]
        try collective.allReduce(&peaks, .sum)
        for _ in 0..<warmupSteps { try trainer.step() }
        var split = [0.0, 0.0, 0.0, 0.0]
        try collective.barrier()
        GemmTimer.seconds = 0
        GemmTimer.missedThreadedCalls = false
        GemmTimer.isEnabled = true
        let allocationsBefore = mallocCalls()
        defer { GemmTimer.isEnabled = false }
        var clock = Clock()
        for _ in 0..<steps {
            try trainer.step()
            let t = trainer.lastTiming
            split[0] += t.forward; split[1] += t.backward; split[2] += t.allReduce; split[3] += t.optimizer
        }
        let allocations = both(allocationsBefore, mallocCalls()).map { Double($1 - $0) / Double(steps) }
        try collective.barrier()
        let wall = clock.lap() / Double(steps)
        try collective.allReduce(&split, .max)
        let config = trainer.config
        let tokensPerSecond = Double(config.batchSize * config.model.seqLen) / wall
        let gflops = tokensPerSecond * config.model.trainingFlopsPerToken / 1e9
        let counted = 4 * trainer.model.parameterCount * 4 + trainer.workspace.bytes
        return Result(ranks: collective.size, threadsPerRank: BLAS.threads, tokensPerSecond: tokensPerSecond,
                      modelGflops: gflops, sgemmPeakGflops: peaks[0], mfu: gflops / peaks[0],
                      forwardSeconds: split[0] / Double(steps), backwardSeconds: split[1] / Double(steps),
                      allReduceSeconds: split[2] / Double(steps), optimizerSeconds: split[3] / Double(steps),
                      stepSeconds: wall, sgemmSeconds: GemmTimer.missedThreadedCalls ? nil : GemmTimer.seconds / Double(steps), peakRSSBytes: peakResidentBytes(), countedBytes: counted,
                      heapAllocationsPerStep: allocations)
    }
}

/// Both values, or nil when either is missing.
public func both<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
