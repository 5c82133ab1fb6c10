import Foundation
import XCTest
@testable import ReZero

/// The Float row kernels (SIMD16, fixed-order sums, Cephes exp, GELU without tanh) against Double
/// computations on the same values; their results do not depend on where a row sits in memory.
/// The Double paths' finite-difference checks are in KernelGradientTests.
final class RowKernelTests: XCTestCase {
    static let counts = Array(0...70) + [127, 128, 255, 256, 257, 1000, 4096, 4097]

    /// Fixed-order sum and inner product within (n/16 + 20)·2⁻²⁴·Σ|terms| of the exact sum (each
    /// lane adds n/16 terms, then a 4-level tree and the tail), and bit-identical wherever the data
    /// sits (offsets of 1…15 floats), i.e. independent of alignment; the maximum exact.
    func testSumAndInnerProduct() {
        let storage = Buffer<Float>(zeros: 8192 + 64)
        for n in Self.counts {
            let x = Buffer<Float>(n, seed: UInt64(n) + 1, scale: 3), y = Buffer<Float>(n, seed: UInt64(n) + 1000)
            let xd = x.doubles, yd = y.doubles
            let products = zip(xd, yd).map { $0 * $1 }  // exact: a Float product fits in a Double
            let s = Float.sum(x.pointer, count: n), d = Float.innerProduct(x.pointer, y.pointer, count: n)
            let bound = Double(n / 16 + 20) * 0x1.0p-24
            XCTAssertLessThanOrEqual(abs(Double(s) - xd.reduce(0, +)), bound * xd.reduce(0) { $0 + abs($1) }, "sum n \(n)")
            XCTAssertLessThanOrEqual(abs(Double(d) - products.reduce(0, +)), bound * products.reduce(0) { $0 + abs($1) },
                                     "inner product n \(n)")
            for offset in 1..<16 {
                let a = storage.pointer + offset, b = storage.pointer + 4096 + 32 - offset
                a.update(from: x.pointer, count: n)
                b.update(from: y.pointer, count: n)
                XCTAssertEqual(Float.sum(a, count: n).bitPattern, s.bitPattern, "sum n \(n) offset \(offset)")
                XCTAssertEqual(Float.innerProduct(a, b, count: n).bitPattern, d.bitPattern, "inner product n \(n) offset \(offset)")
            }
            XCTAssertEqual(Double.sum(x.doubles, count: n), xd.reduce(0, +))
            XCTAssertEqual(Double.innerProduct(xd, yd, count: n), products.reduce(0, +))
            if n > 0 {
                XCTAssertEqual(Float.maximum(x.pointer, count: n), x.array.max()!, "max n \(n)")
                XCTAssertEqual(Double.maximum(xd, count: n), xd.max()!, "max n \(n)")
            }
        }
    }

    /// The SIMD16 exp equals the scalar Cephes exp bit for bit at every position (so results do not
    /// depend on where a row starts or how it is split); the fused exp+sum and the attention
    /// backward's fused row equal their unfused forms bit for bit; and the exp is within 2.5e-7
    /// relative of libm over [−87, 0], the range the softmax meets (200 001 points).
    func testExponential() {
        let n = 1000
        let x = Buffer<Float>(n, seed: 91, scale: 20), g = Buffer<Float>(n, seed: 92)
        let storage = Buffer<Float>(zeros: 2 * n + 64)
        let shift = x.array.max()!, rowDot: Float = 0.37
        let whole = Buffer<Float>(copying: x)
        Float.exponentiate(whole.pointer, count: n, shift: shift)
        for offset in [0, 1, 5, 15] {
            for start in [0, 1, 7, 16, 333] {
                let count = n - start, p = storage.pointer + offset, q = storage.pointer + n + 32 + offset
                let label = "offset \(offset) start \(start)"
                p.update(from: x.pointer + start, count: count)
                Float.exponentiate(p, count: count, shift: shift)
                XCTAssertEqual(bits((0..<count).map { Double(p[$0]) }), bits(whole.doubles[start...]), label)
                p.update(from: x.pointer + start, count: count)
                let s = Float.exponentiateAndSum(p, count: count, shift: shift)
                XCTAssertEqual(s.bitPattern, Float.sum(whole.pointer + start, count: count).bitPattern, label)
                p.update(from: x.pointer + start, count: count)
                q.update(from: g.pointer + start, count: count)
                Float.softmaxGradientRow(p, q, count: count, logSumExp: shift, rowDot: rowDot)
                XCTAssertEqual(bits((0..<count).map { Double(p[$0]) }), bits(whole.doubles[start...]), label)
                XCTAssertEqual(bits((0..<count).map { Double(q[$0]) }),
                               bits((start..<n).map { Double(whole.pointer[$0] * (g.pointer[$0] - rowDot)) }), label)
            }
        }
        let grid = Buffer<Float>(zeros: 200_001)
        for i in 0..<grid.count { grid.pointer[i] = Float(-87 * Double(i) / Double(grid.count - 1)) }
        let exact = grid.doubles.map { exp($0) }
        Float.exponentiate(grid.pointer, count: grid.count, shift: 0)
        let worst = zip(grid.doubles, exact).reduce(0) { max($0, abs($1.0 - $1.1) / $1.1) }
        print(String(format: "Float exp on [-87, 0]: max relative error %.2e", worst))
        XCTAssertLessThan(worst, 2.5e-7)
        XCTAssertEqual(grid.pointer[0], 1)
    }

    /// Softmax row (Float) against Double: max |Δp| ≤ 3e-7, log Σ exp from the returned (max, sum)
    /// within 3e-7 relative, the backward within 1e-6; the row is bit-identical at any offset.
    func testSoftmaxRow() {
        for n in Self.counts where n > 0 {
            let x = Buffer<Float>(n, seed: UInt64(n) + 7, scale: 4)
            let p = Buffer<Float>(copying: x)
            let (m, s) = Softmax.row(p.pointer, count: n)
            let xd = x.doubles, md = xd.max()!
            let e = xd.map { exp($0 - md) }, sd = e.reduce(0, +), pd = e.map { $0 / sd }
            XCTAssertLessThan(maxAbsDifference(p.doubles, pd), 3e-7, "n \(n)")
            let lse = Double(m) + log(Double(s)), lseD = md + log(sd)
            XCTAssertLessThan(abs(lse - lseD), 3e-7 * max(1, abs(lseD)), "n \(n)")
            let g = Buffer<Float>(n, seed: UInt64(n) + 8), gd = g.doubles
            let dotD = zip(pd, gd).reduce(0) { $0 + $1.0 * $1.1 }
            Softmax.rowBackward(g.pointer, probabilities: p.pointer, count: n)
            XCTAssertLessThan(maxAbsDifference(g.doubles, zip(pd, gd).map { $0 * ($1 - dotD) }), 1e-6, "backward n \(n)")
        }
        let n = 1000, x = Buffer<Float>(n, seed: 4), storage = Buffer<Float>(zeros: n + 16)
        let rows = (0..<16).map { offset in
            let row = storage.pointer + offset
            row.update(from: x.pointer, count: n)
            Softmax.row(row, count: n)
            return bits((0..<n).map { Double(row[$0]) })
        }
        XCTAssertEqual(Set(rows).count, 1, "the softmax depends on the row's alignment")
    }

    /// Cross-entropy of 256-logit rows: each row's loss in `losses` (Float within 1e-6 relative of
    /// Double, the Double path within 1e-12), their sum returned, and p − onehot within 3e-7.
    func testCrossEntropy() {
        let rows = 200, classes = 256
        let logits = Buffer<Float>(rows * classes, seed: 3, scale: 5)
        var targets = (0..<rows).map { UInt8(($0 * 37 + 11) % 256) }
        var exactLosses: [Double] = [], exactProbabilities: [Double] = []
        let values = logits.doubles
        for r in 0..<rows {
            let x = values[(r * classes)..<((r + 1) * classes)], m = x.max()!
            let sum = x.reduce(0) { $0 + exp($1 - m) }
            exactLosses.append(m + log(sum) - x[x.startIndex + Int(targets[r])])
            exactProbabilities += x.map { exp($0 - m) / sum }
        }
        let probabilities = Buffer<Float>(copying: logits), losses = Buffer<Float>(zeros: rows)
        let total = CrossEntropy.forward(probabilities.pointer, losses: losses.pointer, targets: &targets, rows: rows, classes: classes)
        XCTAssertEqual(total, losses.doubles.reduce(0, +), accuracy: 1e-9 * total)
        XCTAssertLessThan(zip(losses.doubles, exactLosses).reduce(0) { max($0, abs($1.0 - $1.1) / $1.1) }, 1e-6)
        XCTAssertLessThan(maxAbsDifference(probabilities.doubles, exactProbabilities), 3e-7)
        let gradient = Buffer<Float>(zeros: rows * classes)
        CrossEntropy.backward(dLogits: gradient.pointer, probabilities: probabilities.pointer, targets: &targets, rows: rows,
                              classes: classes, scale: 1 / Float(rows))
        let exactGradient = exactProbabilities.indices.map { i in
            (exactProbabilities[i] - (i % classes == Int(targets[i / classes]) ? 1 : 0)) / Double(rows)
        }
        XCTAssertLessThan(maxAbsDifference(gradient.doubles, exactGradient), 3e-7 / Double(rows))
        let logitsD = Buffer<Double>(copying: logits), lossesD = Buffer<Double>(zeros: rows)
        let totalD = CrossEntropy.forward(logitsD.pointer, losses: lossesD.pointer, targets: &targets, rows: rows, classes: classes)
        XCTAssertLessThan(zip(lossesD.array, exactLosses).reduce(0) { max($0, abs($1.0 - $1.1) / $1.1) }, 1e-12)
        XCTAssertEqual(totalD, exactLosses.reduce(0, +), accuracy: 1e-12 * totalD)
    }

    /// LayerNorm rows, width 256 and odd widths: forward against the formula in Double (Float to
    /// 2e-6, the Double path to 1e-12); the Float backward (writing and accumulating) against the
    /// Double path (itself checked by finite differences) to 2e-6; in place (dx = dy, Post-LN's
    /// use) bit-identical to out of place.
    func testLayerNorm() {
        for width in [256, 7, 33, 100] {
            let rows = 20
            let x = Buffer<Float>(rows * width, seed: 61, scale: 2), w = Buffer<Float>(width, seed: 62)
            let b = Buffer<Float>(width, seed: 63), dy = Buffer<Float>(rows * width, seed: 64)
            let xD = Buffer<Double>(copying: x), wD = Buffer<Double>(copying: w), bD = Buffer<Double>(copying: b)
            let dyD = Buffer<Double>(copying: dy)
            var exact: [Double] = [], exactMean: [Double] = [], exactRstd: [Double] = []
            let values = xD.array
            for r in 0..<rows {
                let row = values[(r * width)..<((r + 1) * width)]
                let mean = row.reduce(0, +) / Double(width)
                let rstd = 1 / (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(width) + LayerNorm.epsilon).squareRoot()
                for (c, v) in row.enumerated() { exact.append((v - mean) * rstd * wD.pointer[c] + bD.pointer[c]) }
                exactMean.append(mean)
                exactRstd.append(rstd)
            }
            let y = Buffer<Float>(zeros: x.count), mean = Buffer<Float>(zeros: rows), rstd = Buffer<Float>(zeros: rows)
            let yD = Buffer<Double>(zeros: x.count), meanD = Buffer<Double>(zeros: rows), rstdD = Buffer<Double>(zeros: rows)
            LayerNorm.forward(y.pointer, mean: mean.pointer, rstd: rstd.pointer, x.pointer, weight: w.pointer,
                              bias: b.pointer, rows: rows, width: width)
            LayerNorm.forward(yD.pointer, mean: meanD.pointer, rstd: rstdD.pointer, xD.pointer, weight: wD.pointer,
                              bias: bD.pointer, rows: rows, width: width)
            let label = "width \(width)"
            XCTAssertLessThan(maxAbsDifference(y.doubles, exact), 2e-6, label)
            XCTAssertLessThan(maxAbsDifference(mean.doubles, exactMean), 1e-6, label)
            XCTAssertLessThan(relativeError(rstd.doubles, exactRstd), 1e-6, label)
            XCTAssertLessThan(maxAbsDifference(yD.array, exact), 1e-12, label)
            XCTAssertLessThan(maxAbsDifference(meanD.array, exactMean), 1e-12, label)
            XCTAssertLessThan(relativeError(rstdD.array, exactRstd), 1e-12, label)
            for accumulate in [false, true] {
                let dx = Buffer<Float>(x.count, seed: 65), dW = Buffer<Float>(width, seed: 66), dB = Buffer<Float>(width, seed: 67)
                let dxD = Buffer<Double>(copying: dx), dWD = Buffer<Double>(copying: dW), dBD = Buffer<Double>(copying: dB)
                LayerNorm.backward(dx: dx.pointer, accumulateInput: accumulate, dWeight: dW.pointer, dBias: dB.pointer,
                                   dy: dy.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                   weight: w.pointer, rows: rows, width: width)
                LayerNorm.backward(dx: dxD.pointer, accumulateInput: accumulate, dWeight: dWD.pointer, dBias: dBD.pointer,
                                   dy: dyD.pointer, x: xD.pointer, mean: meanD.pointer, rstd: rstdD.pointer,
                                   weight: wD.pointer, rows: rows, width: width)
                let label = "width \(width) accumulate \(accumulate)"
                XCTAssertLessThan(relativeError(dx.doubles, dxD.array), 2e-6, "dx " + label)
                XCTAssertLessThan(relativeError(dW.doubles, dWD.array), 2e-6, "dWeight " + label)
                XCTAssertLessThan(relativeError(dB.doubles, dBD.array), 2e-6, "dBias " + label)
            }
            let inPlace = Buffer<Float>(copying: dy), separate = Buffer<Float>(zeros: dy.count)
            let dW = Buffer<Float>(zeros: width), dB = Buffer<Float>(zeros: width)
            LayerNorm.backward(dx: separate.pointer, accumulateInput: false, dWeight: dW.pointer, dBias: dB.pointer,
                               dy: dy.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer, weight: w.pointer,
                               rows: rows, width: width)
            LayerNorm.backward(dx: inPlace.pointer, accumulateInput: false, dWeight: dW.pointer, dBias: dB.pointer,
                               dy: inPlace.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                               weight: w.pointer, rows: rows, width: width)
            XCTAssertEqual(bits(inPlace.doubles), bits(separate.doubles), "in place, " + label)
        }
    }
}

/// The Float GELU (tanh form, computed as x·σ(2u) with Cephes' exp) and its derivative.
final class GELUTests: XCTestCase {
    /// GELU and its derivative by the tanh formula, in Double with libm.
    static func exact(_ x: Double) -> (y: Double, dy: Double) {
        let t = tanh(geluSqrt2OverPi * (x + geluCubic * x * x * x))
        return (0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * geluSqrt2OverPi * (1 + 3 * geluCubic * x * x))
    }

    /// Over a dense grid of [−20, 20] (400 001 points, step 1e-4), forward and derivative within
    /// 1.5e-7 + 2.5e-7·|exact| of Double libm (about 2 ulp of max(|y|, 0.6)). The grid is dense
    /// enough to catch the cancellation of the former Float derivative (libm tanhf, 1 − t²),
    /// which the test checks breaks the bound on it.
    func testErrorBound() {
        let n = 400_001
        let x = Buffer<Float>(zeros: n), y = Buffer<Float>(zeros: n), d = Buffer<Float>(zeros: n)
        for i in 0..<n { x.pointer[i] = Float(-20 + 40 * Double(i) / Double(n - 1)) }
        Float.geluForward(y.pointer, x.pointer, count: n)
        d.pointer.update(repeating: 1, count: n)
        Float.geluBackward(d.pointer, x.pointer, count: n)
        func bound(_ exact: Double) -> Double { 1.5e-7 + 2.5e-7 * abs(exact) }
        var worst = (y: 0.0, dy: 0.0, yAbsolute: 0.0, dyAbsolute: 0.0, tanhfDerivative: 0.0)
        for i in 0..<n {
            let v = x.pointer[i], e = Self.exact(Double(v))
            let errorY = abs(Double(y.pointer[i]) - e.y), errorD = abs(Double(d.pointer[i]) - e.dy)
            worst.y = max(worst.y, errorY / bound(e.y))
            worst.dy = max(worst.dy, errorD / bound(e.dy))
            worst.yAbsolute = max(worst.yAbsolute, errorY)
            worst.dyAbsolute = max(worst.dyAbsolute, errorD)
            // The former Float derivative (main at 97a6191), operation for operation.
            let c0 = Float(geluSqrt2OverPi), c1 = Float(geluCubic), t = tanhf(c0 * (v + c1 * v * v * v))
            let dInner = c0 * (1 + 3 * c1 * v * v)
            let tanhfDerivative = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner
            worst.tanhfDerivative = max(worst.tanhfDerivative, abs(Double(tanhfDerivative) - e.dy) / bound(e.dy))
        }
        print(String(format: "GELU Float vs Double libm on [-20, 20]: max |error| forward %.2e, derivative %.2e; "
                     + "max error/bound forward %.3f, derivative %.3f (tanhf derivative %.2f)",
                     worst.yAbsolute, worst.dyAbsolute, worst.y, worst.dy, worst.tanhfDerivative))
        XCTAssertLessThanOrEqual(worst.y, 1)
        XCTAssertLessThanOrEqual(worst.dy, 1)
        XCTAssertTrue(y.array.allSatisfy(\.isFinite) && d.array.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(worst.tanhfDerivative, 1, "the grid no longer catches the tanhf derivative's cancellation")
    }

    /// Huge and infinite inputs give x or ≈0 and 1 or ≈0, never NaN; NaN propagates.
    func testExtremeInputs() {
        let big: [Float] = [1e30, -1e30, .infinity, -.infinity, 88, -88, 0, -0.0]
        var y = [Float](repeating: 0, count: big.count), d = [Float](repeating: 1, count: big.count)
        Float.geluForward(&y, big, count: big.count)
        Float.geluBackward(&d, big, count: big.count)
        XCTAssertEqual(y[0], 1e30)
        XCTAssertEqual(y[2], .infinity)
        XCTAssertEqual(y[4], 88)
        XCTAssertEqual(y[6], 0)
        for i in [1, 3, 5] { XCTAssertLessThan(abs(y[i]), 1e-36, "\(big[i])") }
        for i in [0, 2, 4] { XCTAssertEqual(d[i], 1, "\(big[i])") }
        for i in [1, 3, 5] { XCTAssertLessThan(abs(d[i]), 1e-30, "\(big[i])") }
        XCTAssertEqual(d[6], 0.5)
        XCTAssertTrue(d.allSatisfy(\.isFinite))
        // The same through the 16-lane loop.
        let lanes = Array(repeating: big, count: 2).flatMap { $0 }
        var laneY = [Float](repeating: 0, count: 16), laneD = [Float](repeating: 1, count: 16)
        Float.geluForward(&laneY, lanes, count: 16)
        Float.geluBackward(&laneD, lanes, count: 16)
        XCTAssertEqual(bits(laneY[..<8].map(Double.init)), bits(y.map(Double.init)))
        XCTAssertEqual(bits(laneD[..<8].map(Double.init)), bits(d.map(Double.init)))
        var nanOut: [Float] = [0]
        Float.geluForward(&nanOut, [.nan], count: 1)
        XCTAssertTrue(nanOut[0].isNaN)
    }
}
