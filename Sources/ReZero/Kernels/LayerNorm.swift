/// Row-wise LayerNorm over the last dimension, with affine weight and bias (biased variance,
/// ε = 1e-5, as PyTorch's).
enum LayerNorm {
    static let epsilon = 1e-5

    /// Stores each row's mean and 1/σ for the backward pass.
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ y: UnsafeMutablePointer<S>, mean: UnsafeMutablePointer<S>, rstd: UnsafeMutablePointer<S>,
        _ x: UnsafePointer<S>, weight: UnsafePointer<S>, bias: UnsafePointer<S>, rows: Int, width: Int
    ) {
        for r in 0..<rows {
            (mean[r], rstd[r]) = S.layerNormForwardRow(y + r * width, x + r * width, weight: weight, bias: bias,
                                                       width: width, epsilon: S(epsilon))
        }
    }

    /// Accumulates dWeight, dBias; writes dx, or adds to it when `accumulateInput`. dx may be dy.
    @inline(__always)
    static func backward<S: TensorScalar>(
        dx: UnsafeMutablePointer<S>, accumulateInput: Bool,
        dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, x: UnsafePointer<S>, mean: UnsafePointer<S>, rstd: UnsafePointer<S>,
        weight: UnsafePointer<S>, rows: Int, width: Int
    ) {
        for r in 0..<rows {
            S.layerNormBackwardRow(dx: dx + r * width, accumulate: accumulateInput, dWeight: dWeight, dBias: dBias,
                                   dy: dy + r * width, x: x + r * width, mean: mean[r], rstd: rstd[r],
                                   weight: weight, width: width)
        }
    }
}
