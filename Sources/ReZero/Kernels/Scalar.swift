import CBLAS
import RealModule

/// The element type of the model: `Float` for training, `Double` for gradient checks.
/// Every kernel is generic over it and specialized by the optimizer inside this module, so the
/// Float path is the same machine code it would be if written for Float alone.
public protocol TensorScalar: Real, BinaryFloatingPoint, SIMDScalar, Sendable {
    /// Row-major C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C through BLAS.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// x[i] ← exp(x[i] − shift), for shift ≥ every x[i] (the softmax's use).
    static func exponentiate(_ x: UnsafeMutablePointer<Self>, count: Int, shift: Self)
}

@inline(__always)
private func transpose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, transpose(transA), transpose(transB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }

    /// Cephes' single-precision exp (within 1.2e-7 relative of libm on [−87, 0]) in a form LLVM
    /// vectorizes: a degree-6 polynomial on the reduced argument, 2ᵏ built from its exponent bits.
    @inline(__always)
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) {
        let roundingBias: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer in the low bits
        for i in 0..<count {
            let v = Swift.max(x[i] - shift, -87)
            let t = v * 1.442_695_04 + roundingBias
            let k = t - roundingBias
            let r = v - k * 0.693_359_375 + k * 2.121_944_4e-4
            var p: Float = 1.987_569_15e-4
            p = p * r + 1.398_199_95e-3
            p = p * r + 8.333_451_9e-3
            p = p * r + 4.166_579_59e-2
            p = p * r + 1.666_666_55e-1
            p = p * r + 5.000_000_12e-1
            p = p * r * r + r + 1
            let exponent = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000 &+ 127
            x[i] = p * Float(bitPattern: UInt32(bitPattern: exponent) &<< 23)
        }
    }
}

extension Double: TensorScalar {
    @inline(__always)
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        cblas_dgemm(CblasRowMajor, transpose(transA), transpose(transB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }

    /// libm's exp: the gradient checks want Double's full accuracy.
    @inline(__always)
    public static func exponentiate(_ x: UnsafeMutablePointer<Double>, count: Int, shift: Double) {
        for i in 0..<count { x[i] = Double.exp(x[i] - shift) }
    }
}

/// BLAS thread control (OpenBLAS).
public enum BLAS {
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
