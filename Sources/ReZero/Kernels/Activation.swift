/// Pointwise nonlinearity of the feed-forward block. GELU is the tanh form: Float through the
/// vectorized `geluForward`/`geluBackward`, Double through libm's tanh.
enum Activation {
    @inline(__always)
    static func forward<S: TensorScalar>(_ kind: ActivationKind, _ y: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, count: Int) {
        switch kind {
        case .relu:
            // Written so LLVM vectorizes it (maxps); NaN passes through for the debug checks.
            for i in 0..<count { y[i] = x[i] < 0 ? 0 : x[i] }
        case .gelu:
            S.geluForward(y, x, count: count)
        }
    }

    /// In place: d ← d · act'(x).
    @inline(__always)
    static func backward<S: TensorScalar>(_ kind: ActivationKind, _ d: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, count: Int) {
        switch kind {
        case .relu:
            // A multiply by the 0/1 mask vectorizes; a conditional store would stay scalar.
            for i in 0..<count {
                let keep: S = x[i] > 0 ? 1 : 0
                d[i] *= keep
            }
        case .gelu:
            S.geluBackward(d, x, count: count)
        }
    }
}
