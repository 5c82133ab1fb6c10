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

/// The Euclidean norm.
func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
