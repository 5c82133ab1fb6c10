/// Reductions and pointwise kernels with a Float path that vectorizes and a Double path that stays
/// scalar (libm, strict left-to-right sums: the gradient checks want Double's full accuracy).
///
/// Every Float reduction has a fixed summation order that depends only on `count`: lane k of a
/// SIMD16 accumulator sums the elements i ≡ k (mod 16) of the full 16-chunks, left to right; the 16
/// lanes are combined by the fixed tree (lanes 0–7 + 8–15, then 0–3 + 4–7, 0–1 + 2–3, 0 + 1); the
/// tail (count mod 16 elements) is added to that, left to right. Loads are unaligned, so the result
/// is a function of the values alone: never of the buffer's alignment or of thread timing (unlike
/// OpenBLAS's sdot/sasum, whose Haswell kernels change with the pointer's offset).
public protocol RowKernels {
    /// Σ x[i], fixed order.
    static func sum(_ x: UnsafePointer<Self>, count: Int) -> Self
    /// Σ x[i]·y[i], fixed order.
    static func innerProduct(_ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>, count: Int) -> Self
    /// max x[i] (count ≥ 1).
    static func maximum(_ x: UnsafePointer<Self>, count: Int) -> Self
    /// x[i] ← exp(x[i] − shift), for shift ≥ every x[i] (the softmax's use). Float: Cephes polynomial.
    static func exponentiate(_ x: UnsafeMutablePointer<Self>, count: Int, shift: Self)
    /// x[i] ← exp(x[i] − shift) and returns Σ of the new x[i] in the fixed order (= `sum` after
    /// `exponentiate`, in one pass).
    static func exponentiateAndSum(_ x: UnsafeMutablePointer<Self>, count: Int, shift: Self) -> Self
    /// Flash attention's backward row, fused: p ← exp(p − lse) (= P), g ← P ∘ (g − rowDot) (= dS).
    static func softmaxGradientRow(
        _ p: UnsafeMutablePointer<Self>, _ g: UnsafeMutablePointer<Self>, count: Int, logSumExp: Self, rowDot: Self)
    /// y = 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))); y may be x.
    static func geluForward(_ y: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>, count: Int)
    /// d ← d · gelu'(x), in place.
    static func geluBackward(_ d: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>, count: Int)
    /// One LayerNorm row: y = (x − μ)/σ · w + b; returns (μ, 1/σ). y must not alias x.
    static func layerNormForwardRow(
        _ y: UnsafeMutablePointer<Self>, _ x: UnsafePointer<Self>,
        weight: UnsafePointer<Self>, bias: UnsafePointer<Self>, width: Int, epsilon: Self
    ) -> (mean: Self, rstd: Self)
    /// One LayerNorm row backward: dWeight += dy·x̂, dBias += dy, dx (=, or += when accumulate)
    /// 1/σ·(dy·w − mean(dy·w) − x̂·mean(dy·w·x̂)). dx may be dy (in place).
    static func layerNormBackwardRow(
        dx: UnsafeMutablePointer<Self>, accumulate: Bool,
        dWeight: UnsafeMutablePointer<Self>, dBias: UnsafeMutablePointer<Self>,
        dy: UnsafePointer<Self>, x: UnsafePointer<Self>, mean: Self, rstd: Self,
        weight: UnsafePointer<Self>, width: Int)
}
