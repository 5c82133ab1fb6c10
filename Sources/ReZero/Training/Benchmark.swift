import Foundation

/// Measurements for `rezero bench`.
public enum Benchmark {
    /// Best-of-`repeats` sgemm throughput for an n×n×n product on `threads` BLAS threads.
    public static func sgemmPeak(threads: Int, n: Int = 1024, repeats: Int = 5) -> Double {
        let saved = BLAS.threads
        BLAS.threads = threads
        defer { BLAS.threads = saved }
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
        public var ranks: Int
        /// In-process data-parallel workers per rank, and BLAS threads per worker.
        public var workersPerRank: Int, blasThreadsPerWorker: Int
        /// OpenBLAS's kernels on rank 0.
        public var blasKernels: String
        public var tokensPerSecond: Double
        public var modelGflops: Double, sgemmPeakGflops: Double, mfu: Double
        public var forwardSeconds: Double, backwardSeconds: Double, allReduceSeconds: Double, optimizerSeconds: Double
        public var stepSeconds: Double
        /// Time inside cblas_sgemm per step on rank 0, summed over the threads that called it,
        /// when launch/bench-counters.c is preloaded (nil otherwise).
        public var sgemmSeconds: Double?
        public var peakResidentBytes: Int, countedBytes: Int
        /// A worker's activations and, beyond the first worker, its gradient buffer.
        public var bytesPerWorker: Int
        /// Of those, attention's: the log-sum-exps and a block of scores, O(T) per sequence.
        public var attentionBytesPerWorker: Int
        /// Heap allocations per measured step on rank 0, when the counters are preloaded (nil otherwise).
        public var heapAllocationsPerStep: Double?
    }

    /// The counters of launch/bench-counters.c, when it is preloaded (LD_PRELOAD): it wraps
    /// malloc and cblas_sgemm from outside the binary, so the kernels carry no instrumentation.
    struct Counters {
        var mallocCalls: Int, sgemmNanoseconds: Int

        static func read() -> Counters? {
            guard let calls = dlsym(nil, "rezero_malloc_calls"), let sgemm = dlsym(nil, "rezero_sgemm_nanoseconds") else {
                return nil
            }
            typealias Counter = @convention(c) () -> Int
            return Counters(mallocCalls: unsafeBitCast(calls, to: Counter.self)(),
                            sgemmNanoseconds: unsafeBitCast(sgemm, to: Counter.self)())
        }

        /// The calling thread's heap allocations so far, when the counters are preloaded.
        static func threadMallocCalls() -> Int? {
            guard let calls = dlsym(nil, "rezero_thread_malloc_calls") else { return nil }
            return unsafeBitCast(calls, to: (@convention(c) () -> Int).self)()
        }
    }

    /// Times `steps` training steps after `warmupSteps`, averaging the per-phase split; the
    /// sgemm peak is that of all ranks together, each measured on as many threads as its step
    /// uses (workers × BLAS threads: the workers run single-threaded BLAS side by side).
    public static func run(trainer: Trainer, warmupSteps: Int, steps: Int) throws -> Result {
        let collective = trainer.collective
        let layout = trainer.workers.layout
        var peaks = [sgemmPeak(threads: layout.workers * layout.blasThreads)]
        try collective.allReduce(&peaks, .sum)
        for _ in 0..<warmupSteps { try trainer.step() }
        var split = [0.0, 0.0, 0.0, 0.0]
        try collective.barrier()
        let before = Counters.read()
        var clock = Clock()
        for _ in 0..<steps {
            try trainer.step()
            let t = trainer.lastTiming
            split[0] += t.forward
            split[1] += t.backward
            split[2] += t.allReduce
            split[3] += t.optimizer
        }
        let after = Counters.read()
        try collective.barrier()
        let wall = clock.lap() / Double(steps)
        try collective.allReduce(&split, .max)
        let config = trainer.config
        let tokensPerSecond = Double(config.batchSize * config.model.seqLen) / wall
        let gflops = tokensPerSecond * config.model.trainingFlopsPerToken / 1e9
        // Parameters, gradients and both moments, and every worker's activations and gradients.
        let workers = trainer.workers
        let counted = 4 * trainer.model.parameterCount * MemoryLayout<Float>.stride + workers.layout.workers * workers.bytesPerWorker
        var delta: Counters?
        if let before, let after {
            delta = Counters(mallocCalls: after.mallocCalls - before.mallocCalls,
                             sgemmNanoseconds: after.sgemmNanoseconds - before.sgemmNanoseconds)
        }
        return Result(ranks: collective.size, workersPerRank: workers.layout.workers,
                      blasThreadsPerWorker: workers.layout.blasThreads, blasKernels: BLAS.kernels, tokensPerSecond: tokensPerSecond,
                      modelGflops: gflops, sgemmPeakGflops: peaks[0], mfu: gflops / peaks[0],
                      forwardSeconds: split[0] / Double(steps), backwardSeconds: split[1] / Double(steps),
                      allReduceSeconds: split[2] / Double(steps), optimizerSeconds: split[3] / Double(steps),
                      stepSeconds: wall, sgemmSeconds: delta.map { Double($0.sgemmNanoseconds) * 1e-9 / Double(steps) },
                      peakResidentBytes: peakResidentBytes(), countedBytes: counted, bytesPerWorker: workers.bytesPerWorker,
                      attentionBytesPerWorker: workers.attentionBytesPerWorker,
                      heapAllocationsPerStep: delta.map { Double($0.mallocCalls) / Double(steps) })
    }
}
