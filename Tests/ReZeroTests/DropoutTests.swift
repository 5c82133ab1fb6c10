import XCTest
@testable import ReZero

/// Dropout masks: a pure function of their key, at the requested rate, uncorrelated, and the same
/// however the work is split.
final class DropoutTests: XCTestCase {
    /// The keep rate is 1 − p′ within 5σ over 2²⁰ draws per site, every kept multiplier is
    /// 1/(1 − p′), and the multipliers average 1; p′ is p rounded to a multiple of 2⁻²⁴.
    func testKeepRate() {
        let width = 1024, rows = 1024
        let buffer = Buffer<Float>(zeros: width)
        for rate in [0.05, 0.1, 0.5, 0.9] {
            let dropout = Dropout(rate: rate, seed: 123, step: 4, layer: 2)
            XCTAssertLessThanOrEqual(abs(dropout.effectiveRate - rate), 0x1.0p-25)
            for site in Dropout.Site.allCases {
                var kept = 0, total = 0.0, wrongMultipliers = 0
                for r in 0..<rows {
                    dropout.fill(buffer.pointer, row: dropout.row(site, sequence: r % 8, head: r / 256, position: r),
                                 from: 0, count: width)
                    for j in 0..<width where buffer.pointer[j] != 0 {
                        kept += 1
                        total += Double(buffer.pointer[j])
                        if buffer.pointer[j] != Float(dropout.keepScale) { wrongMultipliers += 1 }
                    }
                }
                let n = Double(width * rows), p = 1 - dropout.effectiveRate
                let sigma = (p * (1 - p) / n).squareRoot()
                let label = "rate \(rate) site \(site)"
                XCTAssertEqual(wrongMultipliers, 0, label)
                XCTAssertLessThan(abs(Double(kept) / n - p), 5 * sigma, label)
                XCTAssertLessThan(abs(total / n - 1), 5 * sigma / p, label)
            }
        }
    }

    /// Neighbouring columns, rows, heads, sequences, layers, steps and sites are uncorrelated
    /// (|r| < 5/√n).
    func testNoCorrelation() {
        let rate = 0.5, width = 4096
        let a = Dropout(rate: rate, seed: 1, step: 1, layer: 0), b = Dropout(rate: rate, seed: 1, step: 2, layer: 0)
        let c = Dropout(rate: rate, seed: 1, step: 1, layer: 1)
        func keeps(_ d: Dropout, _ key: Dropout.Row) -> [Double] { (0..<width).map { d.keeps(key, column: $0) ? 1 : 0 } }
        func correlation(_ x: [Double], _ y: [Double]) -> Double {
            let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
            var sxy = 0.0, sxx = 0.0, syy = 0.0
            for (u, v) in zip(x, y) { sxy += (u - mx) * (v - my); sxx += (u - mx) * (u - mx); syy += (v - my) * (v - my) }
            return sxy / (sxx * syy).squareRoot()
        }
        let bound = 5 / Double(width).squareRoot()
        for r in 0..<64 {
            let x = keeps(a, a.row(.attention, sequence: 0, head: 0, position: r))
            let others = [("next position", keeps(a, a.row(.attention, sequence: 0, head: 0, position: r + 1))),
                          ("next head", keeps(a, a.row(.attention, sequence: 0, head: 1, position: r))),
                          ("next sequence", keeps(a, a.row(.attention, sequence: 1, head: 0, position: r))),
                          ("next step", keeps(b, b.row(.attention, sequence: 0, head: 0, position: r))),
                          ("next layer", keeps(c, c.row(.attention, sequence: 0, head: 0, position: r))),
                          ("another site", keeps(a, a.row(.activation, sequence: 0, head: 0, position: r)))]
            for (name, y) in others { XCTAssertLessThan(abs(correlation(x, y)), bound, "\(name), row \(r)") }
            XCTAssertLessThan(abs(correlation(Array(x.dropLast()), Array(x.dropFirst()))), bound, "next column, row \(r)")
        }
    }

    /// The mask of an element depends on its key alone: any split of a row into segments, any
    /// buffer offset, Float or Double, the same global sequence reached from another first
    /// sequence, and `apply` (out of place and in place) all agree with `keeps`.
    func testMaskIndependentOfSplitting() {
        let dropout = Dropout(rate: 0.3, seed: 5, step: 99, layer: 7, firstSequence: 3)
        let key = dropout.row(.attention, sequence: 2, head: 1, position: 500)
        let width = 1000
        let whole = Buffer<Float>(zeros: width), parts = Buffer<Double>(zeros: width + 16)
        dropout.fill(whole.pointer, row: key, from: 0, count: width)
        XCTAssertEqual(whole.array.map { $0 != 0 }, (0..<width).map { dropout.keeps(key, column: $0) })
        for segment in [1, 3, 7, 16, 64, 333] {
            var start = 0
            while start < width {
                let count = min(segment, width - start), offset = start % 5
                dropout.fill(parts.pointer + offset, row: key, from: start, count: count)
                XCTAssertEqual((0..<count).map { Float(parts.pointer[offset + $0]) }, Array(whole.array[start..<(start + count)]),
                               "segments of \(segment), at \(start)")
                start += count
            }
        }
        // The same global sequence as local index 2 after first sequence 3, or local 0 after 5.
        let shifted = Dropout(rate: 0.3, seed: 5, step: 99, layer: 7, firstSequence: 5)
        let shiftedKey = shifted.row(.attention, sequence: 0, head: 1, position: 500)
        XCTAssertEqual((0..<width).map { shifted.keeps(shiftedKey, column: $0) }, (0..<width).map { dropout.keeps(key, column: $0) })
        // `multiply` from a column on = x · multiplier.
        let x = Buffer<Float>(width, seed: 2), multiplied = Buffer<Float>(copying: x)
        dropout.multiply(multiplied.pointer + 17, row: key, from: 17, count: width - 17, factor: 3)
        XCTAssertEqual(Array(multiplied.array[17...]), (17..<width).map { x.pointer[$0] * (whole.pointer[$0] * 3) })
        // Element-wise sites.
        let batch = 2, sequence = 3, features = 37
        let input = Buffer<Float>(batch * sequence * features, seed: 3), y = Buffer<Float>(zeros: input.count)
        dropout.apply(y.pointer, input.pointer, site: .activation, batch: batch, sequence: sequence, width: features)
        let inPlace = Buffer<Float>(copying: input)
        dropout.apply(inPlace.pointer, inPlace.pointer, site: .activation, batch: batch, sequence: sequence, width: features)
        var expected: [Float] = []
        for b in 0..<batch {
            for t in 0..<sequence {
                let k = dropout.row(.activation, sequence: b, position: t)
                for f in 0..<features {
                    let value = input.pointer[(b * sequence + t) * features + f]
                    expected.append(dropout.keeps(k, column: f) ? value * Float(dropout.keepScale) : 0)
                }
            }
        }
        XCTAssertEqual(y.array, expected)
        XCTAssertEqual(inPlace.array, expected)
    }

    /// Rate 0 is inactive, and attention with it is bit-identical to attention without dropout;
    /// `apply` then copies.
    func testZeroRateIsInactive() {
        let dropout = Dropout(rate: 0, seed: 5, step: 1, layer: 0)
        XCTAssertFalse(dropout.isActive)
        XCTAssertFalse(Dropout.none.isActive)
        XCTAssertTrue(Dropout(rate: 0x1.0p-24, seed: 5, step: 1, layer: 0).isActive)
        let shape = Attention.Shape(batch: 1, sequence: 20, width: 8, heads: 2, block: 8)
        let qkv = Buffer<Float>(20 * 24, seed: 1), dOut = Buffer<Float>(20 * 8, seed: 2)
        let a = AttentionRun(shape, qkv: qkv, dOut: dOut, dropout: dropout), b = AttentionRun(shape, qkv: qkv, dOut: dOut)
        XCTAssertEqual(bits(a.out + a.logSumExp + a.dqkv), bits(b.out + b.logSumExp + b.dqkv))
        let y = Buffer<Float>(zeros: qkv.count)
        dropout.apply(y.pointer, qkv.pointer, site: .attentionOutput, batch: 1, sequence: 20, width: 24)
        XCTAssertEqual(y.array, qkv.array)
    }

    /// Attention's masks follow a sequence's global index, not its place in a batch: 4 sequences
    /// at once give the bits that two halves give, each keyed by its own first sequence — what
    /// workers and ranks, each with a slice of the global batch, rely on.
    func testAttentionMaskFollowsTheGlobalSequence() {
        let t = 64, d = 16
        let qkv = Buffer<Float>(4 * t * 3 * d, seed: 9), dOut = Buffer<Float>(4 * t * d, seed: 10)
        func run(first: Int, count: Int) -> [UInt64] {
            let part = Buffer<Float>(zeros: count * t * 3 * d), partOut = Buffer<Float>(zeros: count * t * d)
            part.pointer.update(from: qkv.pointer + (first - 4) * t * 3 * d, count: part.count)
            partOut.pointer.update(from: dOut.pointer + (first - 4) * t * d, count: partOut.count)
            let shape = Attention.Shape(batch: count, sequence: t, width: d, heads: 2, block: 16)
            let r = AttentionRun(shape, qkv: part, dOut: partOut,
                                 dropout: Dropout(rate: 0.5, seed: 8, step: 2, layer: 1, firstSequence: first))
            return bits(r.out + r.dqkv)
        }
        let whole = run(first: 4, count: 4), halves = run(first: 4, count: 2) + run(first: 6, count: 2)
        func outAndGradient(_ r: [UInt64], batch: Int) -> ([UInt64], [UInt64]) { (Array(r[..<(batch * t * d)]), Array(r[(batch * t * d)...])) }
        let (wholeOut, wholeGradient) = outAndGradient(whole, batch: 4)
        let first = outAndGradient(Array(halves[..<(2 * t * d * 4)]), batch: 2), second = outAndGradient(Array(halves[(2 * t * d * 4)...]), batch: 2)
        XCTAssertEqual(wholeOut, first.0 + second.0)
        XCTAssertEqual(wholeGradient, first.1 + second.1)
        let undropped = AttentionRun(Attention.Shape(batch: 4, sequence: t, width: d, heads: 2, block: 16), qkv: qkv, dOut: dOut)
        XCTAssertNotEqual(bits(undropped.out + undropped.dqkv), whole, "the mask must change the result")
    }
}
