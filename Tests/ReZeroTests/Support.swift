@testable import ReZero

/// A buffer of random Doubles that outlives the closures using it.
final class Buffer {
    let pointer: UnsafeMutablePointer<Double>
    let count: Int
    init(_ count: Int, seed: UInt64, scale: Double = 1) {
        self.count = count
        pointer = .allocate(capacity: count)
        for i in 0..<count { pointer[i] = scale * CounterRandom.normal(seed: seed, stream: 77, counter: UInt64(i)) }
    }
    init(zeros count: Int) {
        self.count = count
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    deinit { pointer.deallocate() }
    var array: [Double] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// ∂f/∂x for every element of x.
func numericGradient(of x: Buffer, _ f: () -> Double) -> [Double] {
    (0..<x.count).map { NumericalGradient.centralDifference(of: x.pointer, at: $0, f) }
}

func relativeError(_ a: [Double], _ b: [Double]) -> Double { NumericalGradient.relativeError(a, b) }

/// Σ w·y: a scalar whose gradient with respect to y is w.
func dot(_ y: UnsafePointer<Double>, _ w: Buffer) -> Double {
    (0..<w.count).reduce(0) { $0 + y[$1] * w.pointer[$1] }
}

/// A small model on the built-in corpus, for the training tests.
enum SmallRun {
    static let corpus = SyntheticSource.standard.corpus(bytes: 200_000)

    static func config(seed: UInt64 = 1, variant: Variant = .rezero) -> TrainingConfig {
        var c = TrainingConfig()
        c.model = ModelConfig(layers: 2, dModel: 32, heads: 2, ffMult: 2, seqLen: 32, variant: variant)
        c.batchSize = 8
        c.steps = 6
        c.learningRate = 3e-3
        c.warmup = 2
        c.seed = seed
        c.evalEvery = 0
        c.evalBytes = 4096
        return c
    }

    static func parameters(_ trainer: Trainer) -> [Float] {
        Array(UnsafeBufferPointer(start: trainer.model.parameters, count: trainer.model.parameterCount))
    }

    static func trained(_ config: TrainingConfig, steps: Int, threads: Int = 1) throws -> Trainer {
        let trainer = try Trainer(config: config, corpus: corpus, collective: .local, threads: threads)
        for _ in 0..<steps { try trainer.step() }
        return trainer
    }
}

/// The Euclidean norm.
func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
