@testable import ReZero

/// A buffer of standard normal values × scale (from `seed`), or zeros, that outlives the closures
/// using it. Float and Double: a Float kernel's result is compared with a Double computation on
/// the very same values (`init(copying:)`).
final class Buffer<S: TensorScalar> {
    let pointer: UnsafeMutablePointer<S>
    let count: Int
    init(_ count: Int, seed: UInt64, scale: Double = 1) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        for i in 0..<count { pointer[i] = S(scale * CounterRandom.normal(seed: seed, stream: 77, counter: UInt64(i))) }
    }
    init(zeros count: Int) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    /// The values of `other`, converted to S.
    init<T: TensorScalar>(copying other: Buffer<T>) {
        count = other.count
        pointer = .allocate(capacity: max(count, 1))
        for i in 0..<count { pointer[i] = S(other.pointer[i]) }
    }
    deinit { pointer.deallocate() }
    var array: [S] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
    var doubles: [Double] { array.map(Double.init) }
}

/// ∂f/∂x for every element of x.
func numericGradient(of x: Buffer<Double>, _ f: () -> Double) -> [Double] {
    (0..<x.count).map { NumericalGradient.centralDifference(of: x.pointer, at: $0, f) }
}

func relativeError(_ a: [Double], _ b: [Double]) -> Double { NumericalGradient.relativeError(a, b) }

/// max |a[i] − b[i]|.
func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// max |a[i]|.
func maxAbs(_ a: [Double]) -> Double { a.reduce(0) { max($0, abs($1)) } }

/// The values' bit patterns: equal only if bit-identical (−0 and 0 differ). Float values compared
/// as Doubles keep this, the conversion being exact.
func bits(_ a: some Sequence<Double>) -> [UInt64] { a.map(\.bitPattern) }

/// Σ w·y: a scalar whose gradient with respect to y is w.
func dot(_ y: UnsafePointer<Double>, _ w: Buffer<Double>) -> Double {
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

