import CBLAS
import Dispatch
import RealModule

/// The element type of the model: `Float` for training, `Double` for gradient checks.
/// Every kernel is generic over it and specialized by the optimizer inside this module, so the
/// Float path is the same machine code it would be if written for Float alone.
public protocol TensorScalar: Real, BinaryFloatingPoint, Sendable {
    /// Row-major C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C through BLAS.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)

    /// Σ x[i]·y[i] through BLAS (a vectorized reduction; Swift keeps strict left-to-right order).
    static func dot(_ count: Int, _ x: UnsafePointer<Self>, _ y: UnsafePointer<Self>) -> Self
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
        let start = GemmTimer.isEnabled ? DispatchTime.now().uptimeNanoseconds : 0
        cblas_sgemm(CblasRowMajor, transpose(transA), transpose(transB),
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
        if GemmTimer.isEnabled { GemmTimer.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
    }

    @inline(__always)
    public static func dot(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(count), x, 1, y, 1)
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

    @inline(__always)
    public static func dot(_ count: Int, _ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>) -> Double {
        cblas_ddot(Int32(count), x, 1, y, 1)
    }
}

/// BLAS thread control (OpenBLAS).
public enum BLAS {
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// Wall time spent inside sgemm, for `bench`'s split between BLAS and the Swift kernels.
public enum GemmTimer {
    nonisolated(unsafe) public static var isEnabled = false
    nonisolated(unsafe) public static var seconds = 0.0
}
