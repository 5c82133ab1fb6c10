import Foundation
import XCTest
@testable import ReZero

/// The blocked attention kernel (both paths, any block shape, with and without dropout) against finite differences and against attention written as its definition.
final class AttentionTests: XCTestCase {
    /// dqkv of Σ w·out against central differences, in Double: blocks of 2 rows over 5 positions
    /// and of 8 over 23 give full, partial and diagonal blocks; key tiles of 3 and 6 give partial
    /// tiles and rows that meet no key of a tile; both paths, with and without dropout (the mask is fixed by its key, so the differences see the same mask).
    /// Longer sequences are checked against the definition (`testMatchesDefinition`).
    func testGradientAgainstFiniteDifferences() {
        for c in [(t: 5, block: 2, keyBlock: 3), (t: 23, block: 8, keyBlock: 6)] {
            for path in Attention.Path.allCases {
                for rate in [0.0, 0.3] {
                    let shape = Attention.Shape(batch: 2, sequence: c.t, width: 8, heads: 2, block: c.block,
                                                keyBlock: c.keyBlock, path: path)
                    let dropout = Dropout(rate: rate, seed: 9, step: 3, layer: 1, firstSequence: 5)
                    checkGradient(shape, dropout: dropout, label: "T \(c.t) block \(c.block) \(path) p \(rate)")
                }
            }
        }
    }

    func checkGradient(_ shape: Attention.Shape, dropout: Dropout, label: String) {
        let n = shape.batch * shape.sequence
        let qkv = Buffer<Double>(n * 3 * shape.width, seed: 5), upstream = Buffer<Double>(n * shape.width, seed: 6)
        let out = Buffer<Double>(zeros: n * shape.width), lse = Buffer<Double>(zeros: Attention.logSumExpCount(shape))
        let scratch = Buffer<Double>(zeros: Attention.scratchCount(shape))
        func loss() -> Double {
            Attention.forward(out.pointer, logSumExp: lse.pointer, qkv: qkv.pointer, scratch: scratch.pointer,
                              shape: shape, dropout: dropout)
            return dot(out.pointer, upstream)
        }
        _ = loss()
        let dqkv = Buffer<Double>(zeros: qkv.count)
        Attention.backward(dqkv: dqkv.pointer, dOut: upstream.pointer, out: out.pointer, qkv: qkv.pointer,
                           logSumExp: lse.pointer, scratch: scratch.pointer, shape: shape, dropout: dropout)
        let error = relativeError(dqkv.array, numericGradient(of: qkv, loss))
        print(String(format: "attention gradient check, %@: relative error %.2e", label, error))
        XCTAssertLessThan(error, 1e-6, label)
    }

    /// Against the definition (`NaiveAttention`), T from 1 to 1024, both paths, several block
    /// shapes, without and with dropout: to 1e-12 in Double; in Float, within 2e-6 (relative to
    /// the largest output, log-sum-exp or gradient element) of the definition evaluated in Double
    /// on the very same Float inputs.
    func testMatchesDefinition() {
        let cases = [(t: 1, block: 64, keyBlock: 256), (t: 5, block: 2, keyBlock: 3), (t: 70, block: 32, keyBlock: 24),
                     (t: 257, block: 64, keyBlock: 100), (t: 1024, block: 64, keyBlock: 256)]
        for c in cases {
            // Dropout doubles the reference's cost; the short cases cover its blocks and tiles.
            for rate in c.t <= 257 ? [0.0, 0.2] : [0.0] {
                let n = 2 * c.t, dropout = Dropout(rate: rate, seed: 3, step: 5, layer: 2, firstSequence: 1)
                let qkvF = Buffer<Float>(n * 96, seed: 11, scale: 1.5), dOutF = Buffer<Float>(n * 32, seed: 12)
                let qkvD = Buffer<Double>(copying: qkvF), dOutD = Buffer<Double>(copying: dOutF)
                let reference = NaiveAttention(qkv: qkvD.array, dOut: dOutD.array, batch: 2, sequence: c.t, width: 32,
                                               heads: 4, dropout: dropout)
                let scale = (out: maxAbs(reference.out), lse: max(1, maxAbs(reference.logSumExp)),
                             dqkv: maxAbs(reference.dqkv))
                for path in Attention.Path.allCases {
                    let shape = Attention.Shape(batch: 2, sequence: c.t, width: 32, heads: 4, block: c.block,
                                                keyBlock: c.keyBlock, path: path)
                    let label = "T \(c.t) \(path) p \(rate)"
                    let double = AttentionRun(shape, qkv: qkvD, dOut: dOutD, dropout: dropout)
                    let doubleError = max(maxAbsDifference(double.out, reference.out),
                                          maxAbsDifference(double.logSumExp, reference.logSumExp),
                                          maxAbsDifference(double.dqkv, reference.dqkv))
                    XCTAssertLessThan(doubleError, 1e-12, "Double, " + label)
                    let float = AttentionRun(shape, qkv: qkvF, dOut: dOutF, dropout: dropout)
                    let out = maxAbsDifference(float.out, reference.out) / scale.out
                    let lse = maxAbsDifference(float.logSumExp, reference.logSumExp) / scale.lse
                    let dqkv = maxAbsDifference(float.dqkv, reference.dqkv) / scale.dqkv
                    XCTAssertLessThan(out, 2e-6, "Float out, " + label)
                    XCTAssertLessThan(lse, 2e-6, "Float log-sum-exp, " + label)
                    XCTAssertLessThan(dqkv, 2e-6, "Float dqkv, " + label)
                    print(String(format: "attention against its definition, %@: Double max |Δ| %.1e; Float max |Δ|/max|·| "
                                 + "out %.2e, log-sum-exp %.2e, dqkv %.2e", label, doubleError, out, lse, dqkv))
                }
            }
        }
    }

    /// The two paths and any block shapes compute the same function up to rounding (Float, dropout on).
    func testPathsAndBlocksAgree() {
        let t = 300, n = 2 * t
        let qkv = Buffer<Float>(n * 96, seed: 21, scale: 2), dOut = Buffer<Float>(n * 32, seed: 22)
        let dropout = Dropout(rate: 0.2, seed: 1, step: 7, layer: 2)
        let base = AttentionRun(Attention.Shape(batch: 2, sequence: t, width: 32, heads: 4, path: .prefix),
                                qkv: qkv, dOut: dOut, dropout: dropout)
        for (block, keyBlock, path) in [(64, 256, Attention.Path.tiled), (32, 64, .tiled), (7, 5, .tiled),
                                        (128, 256, .prefix), (13, 1, .prefix)] {
            let shape = Attention.Shape(batch: 2, sequence: t, width: 32, heads: 4, block: block, keyBlock: keyBlock, path: path)
            let r = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout)
            let label = "block \(block) keyBlock \(keyBlock) \(path)"
            XCTAssertLessThan(maxAbsDifference(r.out, base.out) / maxAbs(base.out), 1e-6, label)
            XCTAssertLessThan(maxAbsDifference(r.logSumExp, base.logSumExp) / maxAbs(base.logSumExp), 1e-6, label)
            XCTAssertLessThan(relativeError(r.dqkv, base.dqkv), 1e-6, label)
        }
    }

    /// Float results are bit-identical whatever BLAS's thread count, on both paths, with and
    /// without dropout: the workers' threads may hold it at 1, a single worker at all cores.
    func testBLASThreadsDoNotChangeTheBits() {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        let qkv = Buffer<Float>(3 * 150 * 96, seed: 31), dOut = Buffer<Float>(3 * 150 * 32, seed: 32)
        for path in Attention.Path.allCases {
            for rate in [0.0, 0.25] {
                var results: [[UInt64]] = []
                for blasThreads in [1, 2] {
                    BLAS.threads = blasThreads
                    let shape = Attention.Shape(batch: 3, sequence: 150, width: 32, heads: 4, block: 32, keyBlock: 48, path: path)
                    let r = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: Dropout(rate: rate, seed: 4, step: 1, layer: 0))
                    results.append(bits(r.out + r.logSumExp + r.dqkv))
                }
                for (i, r) in results.enumerated().dropFirst() {
                    XCTAssertEqual(r, results[0], "\(path) p \(rate), setting \(i)")
                }
            }
        }
    }

    /// Changing the last position's Q, K and V changes no earlier output row, log-sum-exp or dQ
    /// row, bit for bit (dK and dV rows do depend on later queries), with and without dropout.
    func testCausality() {
        let t = 37, d = 16
        for path in Attention.Path.allCases {
            for rate in [0.0, 0.3] {
                let shape = Attention.Shape(batch: 1, sequence: t, width: d, heads: 2, block: 8, keyBlock: 12, path: path)
                let dropout = Dropout(rate: rate, seed: 2, step: 2, layer: 0)
                let qkv = Buffer<Float>(t * 3 * d, seed: 41), dOut = Buffer<Float>(t * d, seed: 42)
                let before = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout)
                for c in 0..<(3 * d) { qkv.pointer[(t - 1) * 3 * d + c] += 1 }
                let after = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout)
                let label = "\(path) p \(rate)"
                XCTAssertNotEqual(bits(before.out[((t - 1) * d)...]), bits(after.out[((t - 1) * d)...]),
                                  "the last row must change: " + label)
                XCTAssertEqual(bits(before.out[..<((t - 1) * d)]), bits(after.out[..<((t - 1) * d)]), label)
                for h in 0..<2 {
                    let earlier = (h * t)..<(h * t + t - 1)
                    XCTAssertEqual(bits(before.logSumExp[earlier]), bits(after.logSumExp[earlier]), label)
                }
                for i in 0..<(t - 1) {
                    let dq = (i * 3 * d)..<(i * 3 * d + d)
                    XCTAssertEqual(bits(before.dqkv[dq]), bits(after.dqkv[dq]), "dQ row \(i), " + label)
                }
            }
        }
    }

    /// With dropout, out = (P ∘ M/(1−p′)) V as defined: P the definition's probabilities without
    /// dropout, M from `Dropout.keeps` element by element (Double).
    func testDropoutMatchesDefinition() {
        let batch = 2, t = 45, d = 16, heads = 2, hd = 8
        let dropout = Dropout(rate: 0.4, seed: 77, step: 12, layer: 3, firstSequence: 10)
        let qkv = Buffer<Double>(batch * t * 3 * d, seed: 51), dOut = Buffer<Double>(batch * t * d, seed: 52)
        let p = NaiveAttention(qkv: qkv.array, dOut: dOut.array, batch: batch, sequence: t, width: d, heads: heads).probabilities
        for path in Attention.Path.allCases {
            let shape = Attention.Shape(batch: batch, sequence: t, width: d, heads: heads, block: 16, keyBlock: 10, path: path)
            let r = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout)
            var worst = 0.0, dropped = 0
            for b in 0..<batch {
                for h in 0..<heads {
                    for i in 0..<t {
                        let key = dropout.row(.attention, sequence: b, head: h, position: i)
                        dropped += (0...i).filter { !dropout.keeps(key, column: $0) }.count
                        for c in 0..<hd {
                            var o = 0.0
                            for j in 0...i where dropout.keeps(key, column: j) {
                                o += p[((b * heads + h) * t + i) * t + j] * dropout.keepScale * qkv.pointer[(b * t + j) * 3 * d + 2 * d + h * hd + c]
                            }
                            worst = max(worst, abs(o - r.out[(b * t + i) * d + h * hd + c]))
                        }
                    }
                }
            }
            XCTAssertGreaterThan(dropped, 0)
            XCTAssertLessThan(worst, 1e-12, "\(path)")
        }
    }

    /// Sequences shorter than, equal to and just past the block and the key tile (T = 1 included)
    /// stay inside the advertised scratch (AttentionRun's guard zones) and match the definition,
    /// with and without dropout.
    func testShortSequences() {
        for t in [1, 2, 3, 63, 64, 65] {
            let qkv = Buffer<Double>(2 * t * 48, seed: 71), dOut = Buffer<Double>(2 * t * 16, seed: 72)
            for rate in [0.0, 0.1] {
                let dropout = Dropout(rate: rate, seed: 1, step: 1, layer: 1)
                let reference = NaiveAttention(qkv: qkv.array, dOut: dOut.array, batch: 2, sequence: t, width: 16, heads: 2,
                                               dropout: dropout)
                for path in Attention.Path.allCases {
                    let shape = Attention.Shape(batch: 2, sequence: t, width: 16, heads: 2, block: 64, keyBlock: 256, path: path)
                    let r = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout)
                    let label = "T \(t) \(path) p \(rate)"
                    XCTAssertLessThan(maxAbsDifference(r.out, reference.out), 1e-12, label)
                    XCTAssertLessThan(maxAbsDifference(r.logSumExp, reference.logSumExp), 1e-12, label)
                    XCTAssertLessThan(maxAbsDifference(r.dqkv, reference.dqkv), 1e-12, label)
                }
            }
        }
    }

    /// The counts the workspace allocates by: log-sum-exp B·H·T; scratch
    /// max(b·T + b, 2T + 2b·T) on the prefix path and max(b·kb + 2b, T + 2b·kb + kb) on tiles.
    func testScratchAndStatisticsCounts() {
        let shape = Attention.Shape(batch: 2, sequence: 4096, width: 256, heads: 4, block: 64, keyBlock: 256)
        XCTAssertEqual(Attention.logSumExpCount(shape), 2 * 4 * 4096)
        var prefix = shape
        prefix.path = .prefix
        XCTAssertEqual(Attention.scratchCount(prefix), 2 * 4096 + 2 * 64 * 4096)
        var tiled = shape
        tiled.path = .tiled
        XCTAssertEqual(Attention.scratchCount(tiled), 4096 + 2 * 64 * 256 + 256)
        // T below the block and the tile: b = kb = T.
        let short = Attention.Shape(batch: 1, sequence: 10, width: 8, heads: 2, block: 64, keyBlock: 256, path: .tiled)
        XCTAssertEqual(Attention.scratchCount(short), max(10 * 10 + 20, 10 + 2 * 10 * 10 + 10))
    }
}

/// Causal softmax attention as defined — softmax(Q Kᵀ·scale, masked to j ≤ i)·V per (sequence,
/// head), explicit loops over queries i and keys j, in Double — and its backward: dP = dO Vᵀ, the
/// softmax's Jacobian dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik), dQ = scale·dS K, dK = scale·dSᵀ Q,
/// dV = Pᵀ dO. With dropout active, P̃ = P ∘ M/(1−p′) replaces P in the output and in dV, and
/// dP = (dO Vᵀ) ∘ M/(1−p′).
struct NaiveAttention {
    /// [batch·T, width]
    var out: [Double]
    /// [batch, heads, T]: log Σ_{j ≤ i} exp(scale·q_i·k_j)
    var logSumExp: [Double]
    /// [batch, heads, T, T]: P before dropout, zero above the diagonal
    var probabilities: [Double]
    /// [batch·T, 3·width]
    var dqkv: [Double]

    init(qkv: [Double], dOut: [Double], batch: Int, sequence t: Int, width d: Int, heads: Int, dropout: Dropout = .none) {
        let hd = d / heads, ld = 3 * d, scale = 1 / Double(hd).squareRoot()
        out = Array(repeating: 0, count: batch * t * d)
        logSumExp = Array(repeating: 0, count: batch * heads * t)
        probabilities = Array(repeating: 0, count: batch * heads * t * t)
        dqkv = Array(repeating: 0, count: batch * t * ld)
        for b in 0..<batch {
            for h in 0..<heads {
                // Indices of element c of row i's query, key and value for this head, and of its output.
                func q(_ i: Int, _ c: Int) -> Int { (b * t + i) * ld + h * hd + c }
                func k(_ i: Int, _ c: Int) -> Int { q(i, c) + d }
                func v(_ i: Int, _ c: Int) -> Int { q(i, c) + 2 * d }
                func o(_ i: Int, _ c: Int) -> Int { (b * t + i) * d + h * hd + c }
                let pair = b * heads + h
                for i in 0..<t {
                    let key = dropout.row(.attention, sequence: b, head: h, position: i)
                    func mask(_ j: Int) -> Double {
                        dropout.isActive ? (dropout.keeps(key, column: j) ? dropout.keepScale : 0) : 1
                    }
                    let keys = 0...i
                    let s = keys.map { j in scale * (0..<hd).reduce(0) { $0 + qkv[q(i, $1)] * qkv[k(j, $1)] } }
                    let m = s.max()!, sum = s.reduce(0) { $0 + exp($1 - m) }
                    logSumExp[pair * t + i] = m + log(sum)
                    let p = s.map { exp($0 - m) / sum }
                    for j in keys { probabilities[(pair * t + i) * t + j] = p[j] }
                    for c in 0..<hd { out[o(i, c)] = keys.reduce(0) { $0 + p[$1] * mask($1) * qkv[v($1, c)] } }
                    let dP = keys.map { j in mask(j) * (0..<hd).reduce(0) { $0 + dOut[o(i, $1)] * qkv[v(j, $1)] } }
                    let rowDot = keys.reduce(0) { $0 + p[$1] * dP[$1] }
                    for j in keys {
                        let dS = p[j] * (dP[j] - rowDot)
                        for c in 0..<hd {
                            dqkv[q(i, c)] += scale * dS * qkv[k(j, c)]
                            dqkv[k(j, c)] += scale * dS * qkv[q(i, c)]
                            dqkv[v(j, c)] += p[j] * mask(j) * dOut[o(i, c)]
                        }
                    }
                }
            }
        }
    }
}

/// Attention forward and backward on fresh buffers, the outputs as Doubles. The outputs start as
/// NaN (every element must be written) and the scratch too (nothing may be read before it is
/// written); every buffer is followed by a guard zone the kernels must leave untouched — for the
/// scratch, that is the check that `Attention.scratchCount` covers all the kernels use.
struct AttentionRun {
    var out: [Double], logSumExp: [Double], dqkv: [Double]

    init<S: TensorScalar>(_ shape: Attention.Shape, qkv: Buffer<S>, dOut: Buffer<S>, dropout: Dropout = .none,
                          file: StaticString = #filePath, line: UInt = #line) {
        let guardCount = 1024, sentinel: S = 12345
        func guarded(_ count: Int, _ initial: S) -> (buffer: Buffer<S>, count: Int) {
            let b = Buffer<S>(zeros: count + guardCount)
            b.pointer.update(repeating: initial, count: count)
            (b.pointer + count).update(repeating: sentinel, count: guardCount)
            return (b, count)
        }
        let out = guarded(shape.batch * shape.sequence * shape.width, .nan)
        let lse = guarded(Attention.logSumExpCount(shape), .nan)
        let scratch = guarded(Attention.scratchCount(shape), .nan)
        let dqkv = guarded(qkv.count, .nan)
        let forward = Attention.forward(out.buffer.pointer, logSumExp: lse.buffer.pointer, qkv: qkv.pointer,
                                        scratch: scratch.buffer.pointer, shape: shape, dropout: dropout)
        let backward = Attention.backward(dqkv: dqkv.buffer.pointer, dOut: dOut.pointer, out: out.buffer.pointer,
                                          qkv: qkv.pointer, logSumExp: lse.buffer.pointer, scratch: scratch.buffer.pointer,
                                          shape: shape, dropout: dropout)
        let label = "T \(shape.sequence) block \(shape.block) keyBlock \(shape.keyBlock) \(shape.resolvedPath)"
        XCTAssertEqual(forward, shape.resolvedPath, file: file, line: line)
        XCTAssertEqual(backward, shape.resolvedPath, file: file, line: line)
        for (name, g) in [("out", out), ("logSumExp", lse), ("scratch", scratch), ("dqkv", dqkv)] {
            XCTAssertTrue((g.count..<g.buffer.count).allSatisfy { g.buffer.pointer[$0] == sentinel },
                          "\(name) overrun: " + label, file: file, line: line)
        }
        func values(_ g: (buffer: Buffer<S>, count: Int)) -> [Double] { (0..<g.count).map { Double(g.buffer.pointer[$0]) } }
        self.out = values(out)
        self.logSumExp = values(lse)
        self.dqkv = values(dqkv)
        XCTAssertTrue((self.out + self.logSumExp + self.dqkv).allSatisfy(\.isFinite), "unwritten or non-finite: " + label,
                      file: file, line: line)
    }
}
