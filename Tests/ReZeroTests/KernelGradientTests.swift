import XCTest
@testable import ReZero

/// Each kernel's backward against central finite differences in Double, on the scalar Σ w·y.
final class KernelGradientTests: XCTestCase {
    let tolerance = 1e-6

    func testLinear() {
        let rows = 3, inputs = 4, outputs = 5
        let x = Buffer<Double>(rows * inputs, seed: 1), w = Buffer<Double>(outputs * inputs, seed: 2), b = Buffer<Double>(outputs, seed: 3)
        let y = Buffer<Double>(zeros: rows * outputs), upstream = Buffer<Double>(rows * outputs, seed: 4)
        func loss() -> Double {
            Linear.forward(y.pointer, x.pointer, weight: w.pointer, bias: b.pointer, rows: rows, inputs: inputs, outputs: outputs)
            return dot(y.pointer, upstream)
        }
        let dx = Buffer<Double>(zeros: x.count), dw = Buffer<Double>(zeros: w.count), db = Buffer<Double>(zeros: b.count)
        _ = loss()
        Linear.backward(dx: dx.pointer, accumulateInput: false, dWeight: dw.pointer, dBias: db.pointer,
                        dy: upstream.pointer, x: x.pointer, weight: w.pointer, rows: rows, inputs: inputs, outputs: outputs)
        XCTAssertLessThan(relativeError(dx.array, numericGradient(of: x, loss)), tolerance)
        XCTAssertLessThan(relativeError(dw.array, numericGradient(of: w, loss)), tolerance)
        XCTAssertLessThan(relativeError(db.array, numericGradient(of: b, loss)), tolerance)
    }

    func testLayerNorm() {
        let rows = 3, width = 7
        let x = Buffer<Double>(rows * width, seed: 7), w = Buffer<Double>(width, seed: 8), b = Buffer<Double>(width, seed: 9)
        let y = Buffer<Double>(zeros: x.count), mean = Buffer<Double>(zeros: rows), rstd = Buffer<Double>(zeros: rows)
        let upstream = Buffer<Double>(x.count, seed: 10)
        func loss() -> Double {
            LayerNorm.forward(y.pointer, mean: mean.pointer, rstd: rstd.pointer, x.pointer, weight: w.pointer,
                              bias: b.pointer, rows: rows, width: width)
            return dot(y.pointer, upstream)
        }
        _ = loss()
        let dx = Buffer<Double>(zeros: x.count), dw = Buffer<Double>(zeros: width), db = Buffer<Double>(zeros: width)
        LayerNorm.backward(dx: dx.pointer, accumulateInput: false, dWeight: dw.pointer, dBias: db.pointer,
                           dy: upstream.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                           weight: w.pointer, rows: rows, width: width)
        XCTAssertLessThan(relativeError(dx.array, numericGradient(of: x, loss)), tolerance)
        XCTAssertLessThan(relativeError(dw.array, numericGradient(of: w, loss)), tolerance)
        XCTAssertLessThan(relativeError(db.array, numericGradient(of: b, loss)), tolerance)
    }

    func testActivations() {
        for kind in ActivationKind.allCases {
            let x = Buffer<Double>(40, seed: 11)
            // Keep ReLU's inputs away from its kink, where the derivative does not exist.
            for i in 0..<x.count where abs(x.pointer[i]) < 0.05 { x.pointer[i] += 0.1 }
            let y = Buffer<Double>(zeros: x.count), upstream = Buffer<Double>(x.count, seed: 12)
            func loss() -> Double {
                Activation.forward(kind, y.pointer, x.pointer, count: x.count)
                return dot(y.pointer, upstream)
            }
            _ = loss()
            let d = Buffer<Double>(copying: upstream)
            Activation.backward(kind, d.pointer, x.pointer, count: x.count)
            XCTAssertLessThan(relativeError(d.array, numericGradient(of: x, loss)), tolerance, "\(kind)")
        }
    }

    func testSoftmaxCrossEntropy() {
        let rows = 4, classes = 9
        let logits = Buffer<Double>(rows * classes, seed: 13), probs = Buffer<Double>(zeros: rows * classes), losses = Buffer<Double>(zeros: rows)
        var targets: [UInt8] = [0, 3, 8, 5]
        func loss() -> Double {
            probs.pointer.update(from: logits.pointer, count: logits.count)
            let total = CrossEntropy.forward(probs.pointer, losses: losses.pointer, targets: &targets, rows: rows, classes: classes)
            XCTAssertEqual(losses.array.reduce(0, +), total, accuracy: 1e-12)
            return total / Double(rows)
        }
        _ = loss()
        let d = Buffer<Double>(zeros: logits.count)
        CrossEntropy.backward(dLogits: d.pointer, probabilities: probs.pointer, targets: &targets, rows: rows,
                              classes: classes, scale: 1 / Double(rows))
        XCTAssertLessThan(relativeError(d.array, numericGradient(of: logits, loss)), tolerance)
    }

    func testCausalSoftmaxRowBackward() {
        let x = Buffer<Double>(6, seed: 14), p = Buffer<Double>(zeros: 6), upstream = Buffer<Double>(6, seed: 15)
        func loss() -> Double {
            p.pointer.update(from: x.pointer, count: 6)
            Softmax.row(p.pointer, count: 6)
            return dot(p.pointer, upstream)
        }
        _ = loss()
        let d = Buffer<Double>(copying: upstream)
        Softmax.rowBackward(d.pointer, probabilities: p.pointer, count: 6)
        XCTAssertLessThan(relativeError(d.array, numericGradient(of: x, loss)), tolerance)
    }

    func testEmbedding() {
        let batch = 2, sequence = 3, width = 4
        var tokens: [UInt8] = [1, 2, 1, 0, 2, 2]
        let table = Buffer<Double>(3 * width, seed: 16), positions = Buffer<Double>(sequence * width, seed: 17)
        let x = Buffer<Double>(zeros: batch * sequence * width), upstream = Buffer<Double>(x.count, seed: 18)
        func loss() -> Double {
            Embedding.forward(x.pointer, tokens: &tokens, tokenTable: table.pointer, positionTable: positions.pointer,
                              batch: batch, sequence: sequence, width: width)
            return dot(x.pointer, upstream)
        }
        _ = loss()
        let dt = Buffer<Double>(zeros: table.count), dp = Buffer<Double>(zeros: positions.count)
        Embedding.backward(dTokenTable: dt.pointer, dPositionTable: dp.pointer, dx: upstream.pointer, tokens: &tokens,
                           batch: batch, sequence: sequence, width: width)
        XCTAssertLessThan(relativeError(dt.array, numericGradient(of: table, loss)), tolerance)
        XCTAssertLessThan(relativeError(dp.array, numericGradient(of: positions, loss)), tolerance)
    }

    func testGatedResidual() {
        for alphaValue in [0.0, 0.37] {
            let x = Buffer<Double>(10, seed: 19), f = Buffer<Double>(10, seed: 20), alpha = Buffer<Double>(zeros: 1)
            alpha.pointer[0] = alphaValue
            let y = Buffer<Double>(zeros: 10), upstream = Buffer<Double>(10, seed: 21)
            func loss() -> Double {
                Residual.forward(y.pointer, x.pointer, branch: f.pointer, alpha: alpha.pointer[0], count: 10)
                return dot(y.pointer, upstream)
            }
            _ = loss()
            let df = Buffer<Double>(zeros: 10)
            let dAlpha = Residual.backward(dBranch: df.pointer, dy: upstream.pointer, branch: f.pointer,
                                           alpha: alpha.pointer[0], count: 10)
            XCTAssertLessThan(relativeError(df.array, numericGradient(of: f, loss)), tolerance)
            XCTAssertLessThan(relativeError([dAlpha], numericGradient(of: alpha, loss)), tolerance)
            // ∂L/∂x is the upstream gradient itself.
            XCTAssertLessThan(relativeError(upstream.array, numericGradient(of: x, loss)), tolerance)
        }
    }
}
