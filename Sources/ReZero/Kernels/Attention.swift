import RealModule

/// Causal multi-head self-attention in O(batch·heads·T) activation memory (FlashAttention-2's
/// schedule on sgemm blocks).
///
/// `qkv` is [batch·T, 3·width] with columns [Q | K | V], head h owning columns h·hd ..< (h+1)·hd of
/// each third; `out` ("heads") is [batch·T, width]. Forward keeps, besides `out`, only the
/// log-sum-exp of each row's scaled scores, `logSumExp` [batch, heads, T]; backward recomputes each
/// probability block as P = exp(scale·Q Kᵀ − lse) and uses D_i = dO_i · O_i, so `out` must be kept.
///
/// Queries go in blocks of `block` rows; a block meets only the keys up to its last row (blocks
/// above the diagonal are skipped; inside the diagonal block the masked entries are zeroed). The
/// key range of a block is covered by one of two paths, equal up to rounding:
/// - `.prefix`: one sgemm over the block's whole causal key prefix into a worker-local
///   block×T scratch, an exact row softmax, one sgemm with V (no rescaling);
/// - `.tiled`: key tiles of `keyBlock` columns with an online softmax (running max and sum per row,
///   the output accumulator rescaled when the max grows).
///
/// The (sequence, head) pairs run one after another on the caller's thread: in training, the
/// threads are the data-parallel workers, each with its own sequences (see `LocalWorkers`).
///
/// Dropout on the probabilities: O = (P ∘ M/(1−p)) V with M from `Dropout` (site `.attention`,
/// row = (sequence, head, query i), column = key j), regenerated in backward; with rate 0 no mask
/// code runs.
enum Attention {
    enum Path: String, Sendable, CaseIterable {
        case prefix, tiled
    }

    struct Shape: Sendable {
        var batch: Int, sequence: Int, width: Int, heads: Int
        /// Query rows per block.
        var block: Int
        /// Key columns per tile (`.tiled` only).
        var keyBlock: Int
        /// nil: `Attention.preferredPath(for:)`.
        var path: Path?

        init(batch: Int, sequence: Int, width: Int, heads: Int, block: Int = 64, keyBlock: Int = 256,
             path: Path? = nil) {
            self.batch = batch
            self.sequence = sequence
            self.width = width
            self.heads = heads
            self.block = block
            self.keyBlock = keyBlock
            self.path = path
        }
        var headWidth: Int { width / heads }
        var scale: Double { 1 / Double(headWidth).squareRoot() }
        /// The path `forward` and `backward` take.
        var resolvedPath: Path { path ?? Attention.preferredPath(for: self) }
        /// First query row of the last block.
        var lastBlockStart: Int { (sequence - 1) / block * block }
        func rows(from start: Int) -> Int { Swift.min(block, sequence - start) }
        /// Key tile width actually used (never wider than the sequence).
        var tile: Int { Swift.min(keyBlock, sequence) }
    }

    /// The measured faster path: the whole-prefix product up to T = 2048, key tiles beyond, where
    /// the 2·block×T backward scratch no longer fits in L2 (the two are within ~2% of each other up
    /// to T = 4096; tiles win by 1–4% at 8192 and 16384).
    static func preferredPath(for shape: Shape) -> Path {
        shape.sequence <= 2048 ? .prefix : .tiled
    }

    /// The shape with the measured best blocks for this sequence length: 64 query rows up to
    /// T = 2048 (larger blocks waste more of the diagonal block), 128 from 4096 on (fewer, larger
    /// products: 1–5% less CPU time at 4096–8192); key tiles of 256; automatic path.
    static func tunedShape(batch: Int, sequence: Int, width: Int, heads: Int) -> Shape {
        Shape(batch: batch, sequence: sequence, width: width, heads: heads, block: sequence >= 4096 ? 128 : 64,
              keyBlock: 256, path: nil)
    }

    /// Elements of `logSumExp`: batch·heads·T (an activation: keep it from forward to backward).
    static func logSumExpCount(_ shape: Shape) -> Int { shape.batch * shape.heads * shape.sequence }

    /// Elements of scratch for forward and backward (not kept between them) on `path`.
    static func scratchCount(_ shape: Shape, path: Path? = nil) -> Int {
        let t = shape.sequence, b = Swift.min(shape.block, t), kb = shape.tile
        switch path ?? shape.resolvedPath {
        case .prefix:
            // forward: scores [b, t], 1/sum [b]; backward: D [t], P [b, t], dP [b, t], mask row [t]
            return Swift.max(b * t + b, 2 * t + 2 * b * t)
        case .tiled:
            // forward: scores [b, kb], running max and sum [b] each; backward: D [t], P, dP [b, kb], mask [kb]
            return Swift.max(b * kb + 2 * b, t + 2 * b * kb + kb)
        }
    }

    // MARK: Forward

    /// out = softmax(mask(Q Kᵀ · scale)) V per (sequence, head); writes logSumExp [batch, heads, T].
    /// Returns the path that ran.
    @discardableResult
    static func forward<S: TensorScalar>(
        _ out: UnsafeMutablePointer<S>, logSumExp: UnsafeMutablePointer<S>, qkv: UnsafePointer<S>,
        scratch: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout = .none
    ) -> Path {
        let path = shape.resolvedPath
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        shape.forEachPair { b, h in
            let q = qkv + b * t * ld + h * hd
            let o = out + b * t * d + h * hd
            let lse = logSumExp + (b * shape.heads + h) * t
            let work = scratch
            switch path {
            case .prefix:
                prefixForward(o, lse: lse, q: q, work: work, shape: shape, dropout: dropout, sequence: b, head: h)
            case .tiled:
                tiledForward(o, lse: lse, q: q, work: work, shape: shape, dropout: dropout, sequence: b, head: h)
            }
        }
        return path
    }

    static func prefixForward<S: TensorScalar>(
        _ o: UnsafeMutablePointer<S>, lse: UnsafeMutablePointer<S>, q: UnsafePointer<S>,
        work: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout, sequence: Int, head: Int
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d
        let k = q + d, v = q + 2 * d, scale = S(shape.scale)
        let rowScale = work + Swift.min(shape.block, t) * t
        for start in stride(from: 0, to: t, by: shape.block) {
            let rows = shape.rows(from: start), keys = start + rows
            S.gemm(transA: false, transB: true, m: rows, n: keys, k: hd, alpha: scale,
                   a: q + start * ld, lda: ld, b: k, ldb: ld, beta: 0, c: work, ldc: keys)
            // Unnormalized: row ← exp(s − max) (P̃ up to 1/sum: the mask multiplies it when active);
            // O rows are divided by the sum after the product, hd values per row instead of keys.
            for r in 0..<rows {
                let i = start + r, n = i + 1, row = work + r * keys
                let m = S.maximum(row, count: n)
                let sum = S.exponentiateAndSum(row, count: n, shift: m)
                lse[i] = m + S.log(sum)
                rowScale[r] = 1 / sum
                if dropout.isActive {
                    dropout.multiply(row, row: dropout.row(.attention, sequence: sequence, head: head, position: i),
                                     from: 0, count: n)
                }
                (row + n).update(repeating: 0, count: keys - n)
            }
            S.gemm(transA: false, transB: false, m: rows, n: hd, k: keys, alpha: 1,
                   a: work, lda: keys, b: v, ldb: ld, beta: 0, c: o + start * d, ldc: d)
            for r in 0..<rows {
                let orow = o + (start + r) * d, f = rowScale[r]
                for c in 0..<hd { orow[c] *= f }
            }
        }
    }

    static func tiledForward<S: TensorScalar>(
        _ o: UnsafeMutablePointer<S>, lse: UnsafeMutablePointer<S>, q: UnsafePointer<S>,
        work: UnsafeMutablePointer<S>, shape: Shape, dropout: Dropout, sequence: Int, head: Int
    ) {
        let t = shape.sequence, d = shape.width, hd = shape.headWidth, ld = 3 * d, kb = shape.tile
        let k = q + d, v = q + 2 * d, scale = S(shape.scale)
        let b = Swift.min(shape.block, t)  // the scratch is sized for min(block, T) rows
        let scores = work, runningMax = work + b * kb, runningSum = runningMax + b
        for start in stride(from: 0, to: t, by: shape.block) {
            let rows = shape.rows(from: start), keys = start + rows
            for j0 in stride(from: 0, to: keys, by: kb) {
                let cols = Swift.min(kb, keys - j0)
                S.gemm(transA: false, transB: true, m: rows, n: cols, k: hd, alpha: scale,
                       a: q + start * ld, lda: ld, b: k + j0 * ld, ldb: ld, beta: 0, c: scores, ldc: cols)
                for r in 0..<rows {
                    let i = start + r, n = Swift.min(cols, i + 1 - j0), row = scores + r * cols
                    guard n > 0 else {  // the row meets no key of this tile: its P row is zero
                        row.update(repeating: 0, count: cols)
                        continue
                    }
                    let tileMax = S.maximum(row, count: n)
                    let oldMax = runningMax[r]
                    let newMax = j0 == 0 ? tileMax : Swift.max(oldMax, tileMax)
                    let sum = S.exponentiateAndSum(row, count: n, shift: newMax)
                    if j0 == 0 {
                        runningSum[r] = sum
                    } else if newMax > oldMax {
                        let correction = S.exp(oldMax - newMax)
                        runningSum[r] = runningSum[r] * correction + sum
                        let orow = o + i * d
                        for c in 0..<hd { orow[c] *= correction }
                    } else {
                        runningSum[r] += sum
                    }
                    runningMax[r] = newMax
                    if dropout.isActive {
                        dropout.multiply(row, row: dropout.row(.attention, sequence: sequence, head: head, position: i),
                                         from: j0, count: n)
                    }
                    (row + n).update(repeating: 0, count: cols - n)
                }
                S.gemm(transA: false, transB: false, m: rows, n: hd, k: cols, alpha: 1,
                       a: scores, lda: cols, b: v + j0 * ld, ldb: ld, beta: j0 == 0 ? 0 : 1,
                       c: o + start * d, ldc: d)
            }
            for r in 0..<rows {
                let i = start + r, inv = 1 / runningSum[r], orow = o + i * d
                for c in 0..<hd { orow[c] *= inv }
                lse[i] = runningMax[r] + S.log(runningSum[r])
            }
        }
    }
}

extension Attention.Shape {
    /// Runs body(sequence, head) for every pair.
    @inline(__always)
    func forEachPair(_ body: (Int, Int) -> Void) {
        for pair in 0..<(batch * heads) { body(pair / heads, pair % heads) }
    }
}
