/// Causal multi-head self-attention core on a fused QKV buffer.
///
/// `qkv` is [batch·seq, 3·width] with columns [Q | K | V], head h owning columns h·hd ..< (h+1)·hd
/// of each third; every product runs as sgemm on strided views, so no head is ever copied out.
/// Queries go in blocks of `block` rows, and block i only meets the keys up to its own last row:
/// the masked upper triangle is skipped except inside the diagonal blocks.
enum Attention {
    struct Shape: Sendable {
        var batch: Int, sequence: Int, width: Int, heads: Int
        /// Query rows per block of the causal products.
        var block: Int
        /// Threads sharing the (sequence, head) pairs, each running single-threaded sgemm: these
        /// products are too small for BLAS's own threading to pay. nil: the caller's thread alone.
        var team: ThreadTeam?
        init(batch: Int, sequence: Int, width: Int, heads: Int, block: Int = 64, team: ThreadTeam? = nil) {
            self.batch = batch
            self.sequence = sequence
            self.width = width
            self.heads = heads
            self.block = block
            self.team = team
        }
        var workers: Int { team?.size ?? 1 }
        var headWidth: Int { width / heads }
        var scale: Double { 1 / Double(headWidth).squareRoot() }
        /// First query row of the last block.
        var lastBlockStart: Int { (sequence - 1) / block * block }
        func rows(from start: Int) -> Int { Swift.min(block, sequence - start) }
    }

    /// out[b,t, h·hd..] = softmax(mask(Q Kᵀ · scale)) V; `probabilities` is [batch, heads, seq, seq]
    /// and holds P[i, j] for j ≤ i (entries right of a row's diagonal block are never written or read).
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ out: UnsafeMutablePointer<S>, probabilities: UnsafeMutablePointer<S>,
        qkv: UnsafePointer<S>, shape: Shape
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        shape.forEachPair { b, h, _ in
            let q = qkv + b * t * ld + h * hd, k = q + d, v = q + 2 * d
            let p = probabilities + (b * shape.heads + h) * t * t
            let o = out + b * t * d + h * hd
            for start in stride(from: 0, to: t, by: shape.block) {
                let rows = shape.rows(from: start), keys = start + rows
                let pBlock = p + start * t
                S.gemm(transA: false, transB: true, m: rows, n: keys, k: hd, alpha: S(shape.scale),
                       a: q + start * ld, lda: ld, b: k, ldb: ld, beta: 0, c: pBlock, ldc: t)
                for i in start..<keys {
                    let row = p + i * t
                    Softmax.row(row, count: i + 1)
                    (row + i + 1).update(repeating: 0, count: keys - i - 1)
                }
                S.gemm(transA: false, transB: false, m: rows, n: hd, k: keys, alpha: 1,
                       a: pBlock, lda: t, b: v, ldb: ld, beta: 0, c: o + start * d, ldc: d)
            }
        }
    }

    /// Writes dqkv from dOut; `scratch` holds workers·seq·seq elements.
    @inline(__always)
    static func backward<S: TensorScalar>(
        dqkv: UnsafeMutablePointer<S>, dOut: UnsafePointer<S>, qkv: UnsafePointer<S>,
        probabilities: UnsafePointer<S>, scratch: UnsafeMutablePointer<S>, shape: Shape
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        let scale = S(shape.scale)
        // Last block first: it meets every key, so its dK and dV products initialize all rows
        // (beta 0) and the earlier blocks add to their prefixes.
        shape.forEachPair { b, h, worker in
            let dS = scratch + worker * t * t
            let offset = b * t * ld + h * hd
            let q = qkv + offset, k = q + d, v = q + 2 * d
            let dq = dqkv + offset, dk = dq + d, dv = dq + 2 * d
            let dO = dOut + b * t * d + h * hd
            let p = probabilities + (b * shape.heads + h) * t * t
            for start in stride(from: shape.lastBlockStart, through: 0, by: -shape.block) {
                let rows = shape.rows(from: start), keys = start + rows
                let beta: S = start == shape.lastBlockStart ? 0 : 1
                let dSBlock = dS + start * t, pBlock = p + start * t
                // dP = dO Vᵀ, dV += Pᵀ dO
                S.gemm(transA: false, transB: true, m: rows, n: keys, k: hd, alpha: 1,
                       a: dO + start * d, lda: d, b: v, ldb: ld, beta: 0, c: dSBlock, ldc: t)
                S.gemm(transA: true, transB: false, m: keys, n: hd, k: rows, alpha: 1,
                       a: pBlock, lda: t, b: dO + start * d, ldb: d, beta: beta, c: dv, ldc: ld)
                for i in start..<keys {
                    let row = dS + i * t
                    Softmax.rowBackward(row, probabilities: p + i * t, count: i + 1)
                    (row + i + 1).update(repeating: 0, count: keys - i - 1)
                }
                // dQ = dS K · scale, dK += dSᵀ Q · scale
                S.gemm(transA: false, transB: false, m: rows, n: hd, k: keys, alpha: scale,
                       a: dSBlock, lda: t, b: k, ldb: ld, beta: 0, c: dq + start * ld, ldc: ld)
                S.gemm(transA: true, transB: false, m: keys, n: hd, k: rows, alpha: scale,
                       a: dSBlock, lda: t, b: q + start * ld, ldb: ld, beta: beta, c: dk, ldc: ld)
            }
        }
    }
}

extension Attention.Shape {
    /// Runs body(sequence, head, worker) for every pair; pairs write disjoint memory, so the
    /// result does not depend on how they are shared out.
    @inline(__always)
    func forEachPair(_ body: (Int, Int, Int) -> Void) {
        let pairs = batch * heads
        guard let team, team.size > 1, pairs > 1 else {
            for pair in 0..<pairs { body(pair / heads, pair % heads, 0) }
            return
        }
        let saved = BLAS.threads
        BLAS.threads = 1
        team.run { worker in
            for pair in stride(from: worker, to: pairs, by: team.size) { body(pair / heads, pair % heads, worker) }
        }
        BLAS.threads = saved
    }
}
