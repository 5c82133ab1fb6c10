import RealModule

/// Attention's backward: each probability block recomputed from Q, K and the log-sum-exp.
extension Attention {
    /// Writes dqkv (every element) from dOut; needs forward's `out` and `logSumExp` and the same
    /// shape and dropout. Returns the path that ran.
    @discardableResult
    static func backward<S: TensorScalar>(
        dqkv: UnsafeMutablePointer<S>, dOut: UnsafePointer<S>, out: UnsafePointer<S>, qkv: UnsafePointer<S>,
        logSumExp: UnsafePointer<S>, scratch: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout = .none
    ) -> Path {
        let path = shape.resolvedPath
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        shape.forEachPair { b, h in
            let offset = b * t * ld + h * hd
            let q = qkv + offset, dq = dqkv + offset
            let o = out + b * t * d + h * hd, dO = dOut + b * t * d + h * hd
            let lse = logSumExp + (b * shape.heads + h) * t
            let work = scratch
            // D_i = rowsum(dO_i ∘ O_i) (also with dropout: Σ_j P_ij dP_ij = dO_i · O_i).
            for i in 0..<t { work[i] = S.innerProduct(dO + i * d, o + i * d, count: hd) }
            switch path {
            case .prefix:
                prefixBackward(dq, dO: dO, q: q, lse: lse, rowDot: work, work: work + t, shape: shape,
                               dropout: dropout, sequence: b, head: h)
            case .tiled:
                tiledBackward(dq, dO: dO, q: q, lse: lse, rowDot: work, work: work + t, shape: shape,
                              dropout: dropout, sequence: b, head: h)
            }
        }
        return path
    }

    /// One row of a recomputed block: p ← exp(p − lse) (= P), g ← P ∘ (g·M − D) (= dS), p ← P ∘ M
    /// (= P̃), entries n..<count zeroed in both.
    @inline(__always)
    static func backwardRow<S: TensorScalar>(
        p: UnsafeMutablePointer<S>, g: UnsafeMutablePointer<S>, count: Int, valid n: Int, lse: S, rowDot: S,
        mask: UnsafeMutablePointer<S>, dropout: Dropout, key: () -> Dropout.Row, firstColumn: Int
    ) {
        guard n > 0 else {
            p.update(repeating: 0, count: count)
            g.update(repeating: 0, count: count)
            return
        }
        if dropout.isActive {
            S.exponentiate(p, count: n, shift: lse)
            dropout.fill(mask, row: key(), from: firstColumn, count: n)
            for j in 0..<n {
                g[j] = p[j] * (g[j] * mask[j] - rowDot)
                p[j] *= mask[j]
            }
        } else {
            S.softmaxGradientRow(p, g, count: n, logSumExp: lse, rowDot: rowDot)
        }
        (p + n).update(repeating: 0, count: count - n)
        (g + n).update(repeating: 0, count: count - n)
    }

    static func prefixBackward<S: TensorScalar>(
        _ dq: UnsafeMutablePointer<S>, dO: UnsafePointer<S>, q: UnsafePointer<S>, lse: UnsafePointer<S>,
        rowDot: UnsafePointer<S>, work: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout,
        sequence: Int, head: Int
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        let k = q + d, v = q + 2 * d, dk = dq + d, dv = dq + 2 * d, scale = S(shape.scale)
        let bt = Swift.min(shape.block, t) * t
        let p = work, g = work + bt, mask = g + bt
        // Last block first: it meets every key, so its dK and dV products initialize all rows
        // (beta 0) and the earlier blocks add to their prefixes.
        for start in stride(from: shape.lastBlockStart, through: 0, by: -shape.block) {
            let rows = shape.rows(from: start), keys = start + rows
            let beta: S = start == shape.lastBlockStart ? 0 : 1
            S.gemm(transA: false, transB: true, m: rows, n: keys, k: hd, alpha: scale,
                   a: q + start * ld, lda: ld, b: k, ldb: ld, beta: 0, c: p, ldc: keys)
            S.gemm(transA: false, transB: true, m: rows, n: keys, k: hd, alpha: 1,
                   a: dO + start * d, lda: d, b: v, ldb: ld, beta: 0, c: g, ldc: keys)
            for r in 0..<rows {
                let i = start + r
                backwardRow(p: p + r * keys, g: g + r * keys, count: keys, valid: i + 1, lse: lse[i],
                            rowDot: rowDot[i], mask: mask, dropout: dropout,
                            key: { dropout.row(.attention, sequence: sequence, head: head, position: i) },
                            firstColumn: 0)
            }
            // dV += P̃ᵀ dO, dQ = dS K · scale, dK += dSᵀ Q · scale
            S.gemm(transA: true, transB: false, m: keys, n: hd, k: rows, alpha: 1,
                   a: p, lda: keys, b: dO + start * d, ldb: d, beta: beta, c: dv, ldc: ld)
            S.gemm(transA: false, transB: false, m: rows, n: hd, k: keys, alpha: scale,
                   a: g, lda: keys, b: k, ldb: ld, beta: 0, c: dq + start * ld, ldc: ld)
            S.gemm(transA: true, transB: false, m: keys, n: hd, k: rows, alpha: scale,
                   a: g, lda: keys, b: q + start * ld, ldb: ld, beta: beta, c: dk, ldc: ld)
        }
    }

    static func tiledBackward<S: TensorScalar>(
        _ dq: UnsafeMutablePointer<S>, dO: UnsafePointer<S>, q: UnsafePointer<S>, lse: UnsafePointer<S>,
        rowDot: UnsafePointer<S>, work: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout,
        sequence: Int, head: Int
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d, kb = shape.tile
        let k = q + d, v = q + 2 * d, dk = dq + d, dv = dq + 2 * d, scale = S(shape.scale)
        let bk = Swift.min(shape.block, t) * kb
        let p = work, g = work + bk, mask = g + bk
        for start in stride(from: shape.lastBlockStart, through: 0, by: -shape.block) {
            let rows = shape.rows(from: start), keys = start + rows
            // The last query block meets every key tile: it initializes dK and dV (beta 0).
            let beta: S = start == shape.lastBlockStart ? 0 : 1
            for j0 in stride(from: 0, to: keys, by: kb) {
                let cols = Swift.min(kb, keys - j0)
                S.gemm(transA: false, transB: true, m: rows, n: cols, k: hd, alpha: scale,
                       a: q + start * ld, lda: ld, b: k + j0 * ld, ldb: ld, beta: 0, c: p, ldc: cols)
                S.gemm(transA: false, transB: true, m: rows, n: cols, k: hd, alpha: 1,
                       a: dO + start * d, lda: d, b: v + j0 * ld, ldb: ld, beta: 0, c: g, ldc: cols)
                for r in 0..<rows {
                    let i = start + r
                    backwardRow(p: p + r * cols, g: g + r * cols, count: cols, valid: Swift.min(cols, i + 1 - j0),
                                lse: lse[i], rowDot: rowDot[i], mask: mask, dropout: dropout,
                                key: { dropout.row(.attention, sequence: sequence, head: head, position: i) },
                                firstColumn: j0)
                }
                S.gemm(transA: true, transB: false, m: cols, n: hd, k: rows, alpha: 1,
                       a: p, lda: cols, b: dO + start * d, ldb: d, beta: beta, c: dv + j0 * ld, ldc: ld)
                S.gemm(transA: false, transB: false, m: rows, n: hd, k: cols, alpha: scale,
                       a: g, lda: cols, b: k + j0 * ld, ldb: ld, beta: j0 == 0 ? 0 : 1, c: dq + start * ld, ldc: ld)
                S.gemm(transA: true, transB: false, m: cols, n: hd, k: rows, alpha: scale,
                       a: g, lda: cols, b: q + start * ld, ldb: ld, beta: beta, c: dk + j0 * ld, ldc: ld)
            }
        }
    }
}
