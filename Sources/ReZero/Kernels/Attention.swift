/// Causal multi-head self-attention core on a fused QKV buffer.
///
/// `qkv` is [batch·seq, 3·width] with columns [Q | K | V], head h owning columns h·hd ..< (h+1)·hd
/// of each third; every product runs as one sgemm per (sequence, head) on strided views, so no
/// head is ever copied out.
public enum Attention {
    public struct Shape: Sendable {
        public var batch: Int, sequence: Int, width: Int, heads: Int
        public var headWidth: Int { width / heads }
        public var scale: Double { 1 / Double(headWidth).squareRoot() }
    }

    /// out[b,t, h·hd..] = softmax(mask(Q Kᵀ · scale)) V; `probabilities` is [batch, heads, seq, seq].
    @inline(__always)
    public static func forward<S: TensorScalar>(
        _ out: UnsafeMutablePointer<S>, probabilities: UnsafeMutablePointer<S>,
        qkv: UnsafePointer<S>, shape: Shape
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        for b in 0..<shape.batch {
            for h in 0..<shape.heads {
                let q = qkv + b * t * ld + h * hd, k = q + d, v = q + 2 * d
                let p = probabilities + (b * shape.heads + h) * t * t
                S.gemm(transA: false, transB: true, m: t, n: t, k: hd, alpha: S(shape.scale),
                       a: q, lda: ld, b: k, ldb: ld, beta: 0, c: p, ldc: t)
                for i in 0..<t {
                    let row = p + i * t
                    Softmax.row(row, count: i + 1)
                    (row + i + 1).update(repeating: 0, count: t - i - 1)
                }
                S.gemm(transA: false, transB: false, m: t, n: hd, k: t, alpha: 1,
                       a: p, lda: t, b: v, ldb: ld, beta: 0, c: out + b * t * d + h * hd, ldc: d)
            }
        }
    }

    /// Writes dqkv from dOut; `scratch` holds seq·seq elements.
    @inline(__always)
    public static func backward<S: TensorScalar>(
        dqkv: UnsafeMutablePointer<S>, dOut: UnsafePointer<S>, qkv: UnsafePointer<S>,
        probabilities: UnsafePointer<S>, scratch dS: UnsafeMutablePointer<S>, shape: Shape
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        let scale = S(shape.scale)
        for b in 0..<shape.batch {
            for h in 0..<shape.heads {
                let offset = b * t * ld + h * hd
                let q = qkv + offset, k = q + d, v = q + 2 * d
                let dq = dqkv + offset, dk = dq + d, dv = dq + 2 * d
                let dO = dOut + b * t * d + h * hd
                let p = probabilities + (b * shape.heads + h) * t * t
                // dP = dO Vᵀ, dV = Pᵀ dO
                S.gemm(transA: false, transB: true, m: t, n: t, k: hd, alpha: 1,
                       a: dO, lda: d, b: v, ldb: ld, beta: 0, c: dS, ldc: t)
                S.gemm(transA: true, transB: false, m: t, n: hd, k: t, alpha: 1,
                       a: p, lda: t, b: dO, ldb: d, beta: 0, c: dv, ldc: ld)
                for i in 0..<t {
                    let row = dS + i * t
                    Softmax.rowBackward(row, probabilities: p + i * t, count: i + 1)
                    (row + i + 1).update(repeating: 0, count: t - i - 1)
                }
                // dQ = dS K · scale, dK = dSᵀ Q · scale
                S.gemm(transA: false, transB: false, m: t, n: hd, k: t, alpha: scale,
                       a: dS, lda: t, b: k, ldb: ld, beta: 0, c: dq, ldc: ld)
                S.gemm(transA: true, transB: false, m: t, n: hd, k: t, alpha: scale,
                       a: dS, lda: t, b: q, ldb: ld, beta: 0, c: dk, ldc: ld)
            }
        }
    }
}
