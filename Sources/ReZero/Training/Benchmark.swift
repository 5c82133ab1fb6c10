import Foundation

/// Measurements for `rezero bench`.
public enum Benchmark {
    /// The sgemm rate of a rank's own threads, sampled between its training steps: an n×n×n
    /// product on every worker's thread at once (each on its single-threaded BLAS, as in the
    /// step), or, with one worker, one product on its BLAS threads. A sample is the sum of the
    /// threads' rates. `disturbance` is a test hook: sample i (from 0) is timed as if another
    /// process had held the CPU for (i + 1) × `disturbance` seconds during it.
    final class PeakSampler {
        let n: Int
        let team: ThreadTeam?
        let disturbance: Double
        /// Per member, A, B and C side by side: raw memory, as the members write it concurrently.
        private let operands: [UnsafeMutablePointer<Float>]
        private var taken = 0
        /// Threads the last sample ran on: the members that ran a product, times BLAS's threads.
        private(set) var threads = 0

        init(team: ThreadTeam?, n: Int = 1024, disturbance: Double = 0) {
            self.n = n
            self.team = team
            self.disturbance = disturbance
            operands = (0..<(team?.size ?? 1)).map { _ in
                let memory = TensorMemory.allocate(Float.self, count: 3 * n * n)
                memory.update(repeating: 0.5, count: n * n)
                (memory + n * n).update(repeating: 0.25, count: 2 * n * n)
                return memory
            }
            _ = rates()  // caches, pages and threads warm up on an untimed product
        }

        deinit { for memory in operands { TensorMemory.deallocate(memory) } }

        /// GFLOP/s of one sample on this rank.
        func sample() -> Double {
            let delay = disturbance * Double(taken + 1)
            taken += 1
            return rates(delay: delay).reduce(0, +)
        }

        private func rates(delay: Double = 0) -> [Double] {
            let seconds = UnsafeMutableBufferPointer<Double>.allocate(capacity: operands.count)
            defer { seconds.deallocate() }
            seconds.initialize(repeating: 0)
            let (n, operands) = (self.n, self.operands)
            let product = { (member: Int) in
                var clock = Clock()
                if delay > 0 { usleep(UInt32(delay * 1e6)) }
                let a = operands[member]
                Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: a + n * n, ldb: n,
                           beta: 0, c: a + 2 * n * n, ldc: n)
                seconds[member] = clock.lap()
            }
            if let team { team.run(product) } else { product(0) }
            threads = seconds.filter { $0 > 0 }.count * BLAS.threads
            return seconds.map { 2 * Double(n * n * n) / $0 / 1e9 }
        }
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
        public var modelGflops: Double
        /// What MFU is against: the best sgemm sample, or the fastest step's model rate if that
        /// is higher (the samples were then all disturbed), so MFU ≤ 1.
        public var sgemmPeakGflops: Double, mfu: Double
        /// Every sgemm sample, summed over ranks, in the order taken (before, between and after
        /// the measured steps), and the threads of each rank they ran on.
        public var sgemmSamplesGflops: [Double], peakThreadsPerRank: Int
        /// (max − min) / median of the sgemm samples and of the measured steps' times.
        public var sgemmSampleSpread: Double, stepSpread: Double
        public var forwardSeconds: Double, backwardSeconds: Double, allReduceSeconds: Double, optimizerSeconds: Double
        /// Mean, fastest and slowest measured step (rank 0; the ranks step together).
        public var stepSeconds: Double, fastestStepSeconds: Double, slowestStepSeconds: Double
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
        /// What makes these numbers doubtful: disturbed samples, a wide spread.
        public var warnings: [String]
    }

    /// A spread above this (10%) is reported: the machine was busy during the measurement.
    public static let noisySpread = 0.10

    /// (max − min) / median.
    static func spread(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard let lo = sorted.first, let hi = sorted.last else { return 0 }
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return median > 0 ? (hi - lo) / median : 0
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

    /// Times `steps` training steps after `warmupSteps`, each on its own, averaging the
    /// per-phase split. The sgemm peak is sampled on the step's own threads (`PeakSampler`), on
    /// every rank at once and summed, twice before the measured steps and after each quarter of
    /// them, so that a busy moment shows as a spread rather than as the peak.
    public static func run(trainer: Trainer, warmupSteps: Int, steps: Int, peakDisturbance: Double = 0) throws -> Result {
        let collective = trainer.collective
        let workers = trainer.workers
        let sampler = PeakSampler(team: workers.team, disturbance: peakDisturbance)
        var samples: [Double] = []
        func samplePeak() throws {
            try collective.barrier()
            var rate = [sampler.sample()]
            try collective.allReduce(&rate, .sum)
            samples.append(rate[0])
        }
        for _ in 0..<warmupSteps { try trainer.step() }
        try samplePeak()
        try samplePeak()
        let chunk = (steps + 3) / 4
        var split = [0.0, 0.0, 0.0, 0.0], times: [Double] = []
        times.reserveCapacity(steps)  // so that the measured steps allocate nothing of bench's own
        let before = Counters.read()
        var sgemmNanoseconds = 0, mallocCalls = 0
        for start in stride(from: 0, to: steps, by: chunk) {
            try collective.barrier()
            let first = Counters.read()
            for _ in start..<Swift.min(start + chunk, steps) {
                var clock = Clock()
                try trainer.step()
                times.append(clock.lap())
                let t = trainer.lastTiming
                split[0] += t.forward
                split[1] += t.backward
                split[2] += t.allReduce
                split[3] += t.optimizer
            }
            if let first, let last = Counters.read() {
                sgemmNanoseconds += last.sgemmNanoseconds - first.sgemmNanoseconds
                mallocCalls += last.mallocCalls - first.mallocCalls
            }
            try samplePeak()
        }
        try collective.allReduce(&split, .max)
        let config = trainer.config
        let tokensPerStep = Double(config.batchSize * config.model.seqLen)
        let mean = times.reduce(0, +) / Double(steps), fastest = times.min()!
        let tokensPerSecond = tokensPerStep / mean
        let gflops = tokensPerSecond * config.model.trainingFlopsPerToken / 1e9
        let fastestGflops = tokensPerStep / fastest * config.model.trainingFlopsPerToken / 1e9
        let bestSample = samples.max()!
        let peak = Swift.max(bestSample, fastestGflops)
        var warnings: [String] = []
        if fastestGflops > bestSample {
            warnings.append(String(format: "the fastest step ran at %.1f GFLOP/s, above every sgemm sample (best %.1f): the samples were disturbed, so MFU is against that step's rate", fastestGflops, bestSample))
        }
        let sampleSpread = spread(samples), stepSpread = spread(times)
        if sampleSpread > noisySpread {
            warnings.append(String(format: "the sgemm samples spread by %.0f%% (another process using the CPU?); MFU is against the best", 100 * sampleSpread))
        }
        if stepSpread > noisySpread {
            warnings.append(String(format: "the step times spread by %.0f%%: the machine was busy; compare tokens/s only within one run", 100 * stepSpread))
        }
        // Parameters, gradients and both moments, and every worker's activations and gradients.
        let counted = 4 * trainer.model.parameterCount * MemoryLayout<Float>.stride + workers.layout.workers * workers.bytesPerWorker
        let counters = before != nil
        return Result(ranks: collective.size, workersPerRank: workers.layout.workers,
                      blasThreadsPerWorker: workers.layout.blasThreads, blasKernels: BLAS.kernels, tokensPerSecond: tokensPerSecond,
                      modelGflops: gflops, sgemmPeakGflops: peak, mfu: gflops / peak, sgemmSamplesGflops: samples,
                      peakThreadsPerRank: sampler.threads, sgemmSampleSpread: sampleSpread, stepSpread: stepSpread,
                      forwardSeconds: split[0] / Double(steps), backwardSeconds: split[1] / Double(steps),
                      allReduceSeconds: split[2] / Double(steps), optimizerSeconds: split[3] / Double(steps),
                      stepSeconds: mean, fastestStepSeconds: fastest, slowestStepSeconds: times.max()!,
                      sgemmSeconds: counters ? Double(sgemmNanoseconds) * 1e-9 / Double(steps) : nil,
                      peakResidentBytes: peakResidentBytes(), countedBytes: counted, bytesPerWorker: workers.bytesPerWorker,
                      attentionBytesPerWorker: workers.attentionBytesPerWorker,
                      heapAllocationsPerStep: counters ? Double(mallocCalls) / Double(steps) : nil, warnings: warnings)
    }
}
