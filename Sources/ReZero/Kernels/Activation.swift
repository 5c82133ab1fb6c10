import RealModule

/// Pointwise nonlinearity of the feed-forward block. GELU is the tanh approximation.
enum Activation {
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ kind: ActivationKind, _ y: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, count: Int
    ) {
        switch kind {
        case .relu:
            // Written so LLVM vectorizes it (maxps); NaN passes through for the debug checks.
            for i in 0..<count { y[i] = x[i] < 0 ? 0 : x[i] }
        case .gelu:
            let c0 = S(geluSqrt2OverPi), c1 = S(geluCubic)
            for i in 0..<count {
                let v = x[i]
                y[i] = S(0.5) * v * (1 + S.tanh(c0 * (v + c1 * v * v * v)))
            }
        }
    }

    /// In place: d ← d · act'(x).
    @inline(__always)
    static func backward<S: TensorScalar>(
        _ kind: ActivationKind, _ d: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, count: Int
    ) {
        switch kind {
        case .relu:
            // A multiply by the 0/1 mask vectorizes; a conditional store would stay scalar.
            for i in 0..<count {
                let keep: S = x[i] > 0 ? 1 : 0
                d[i] *= keep
            }
        case .gelu:
            let c0 = S(geluSqrt2OverPi), c1 = S(geluCubic)
            for i in 0..<count {
                let v = x[i]
                let t = S.tanh(c0 * (v + c1 * v * v * v))
                let dInner = c0 * (1 + 3 * c1 * v * v)
                d[i] *= S(0.5) * (1 + t) + S(0.5) * v * (1 - t * t) * dInner
            }
        }
    }

    private static let geluSqrt2OverPi = 0.7978845608028654
    private static let geluCubic = 0.044715
}
