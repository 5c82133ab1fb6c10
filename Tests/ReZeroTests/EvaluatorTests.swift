import XCTest
@testable import ReZero

/// Bits per byte with and without eval context, against a window-by-window computation.
final class EvaluatorTests: XCTestCase {
    static let corpus = SyntheticSource.standard.corpus(bytes: 60_000)

    /// A small model trained for a few steps: predictions that differ by position and context.
    nonisolated(unsafe) static let model: Model<Float> = {
        var c = TrainingConfig()
        c.model = ModelConfig(layers: 2, dModel: 32, heads: 2, ffMult: 2, seqLen: 32)
        c.batchSize = 8
        c.steps = 50
        c.learningRate = 1e-2
        c.warmup = 10
        let trainer = try! Trainer(config: c, corpus: corpus, collective: .local)
        for _ in 0..<c.steps { try! trainer.step() }
        return trainer.model
    }()

    /// Bits per byte by running each window alone and adding −log₂ p(next byte) over its scored
    /// positions: what the evaluator must compute, without its batching, grouping or sharing.
    func windowByWindow(_ split: Split, context: Int, limit: Int) -> Double {
        let model = Self.model
        var bits = 0.0, bytes = 0
        for window in SmallRun.corpus.evaluationWindows(split, sequence: model.config.seqLen, context: context, limit: limit) {
            let n = window.inputs.count
            let ws = Workspace<Float>(config: model.config, batch: 1, sequence: n)
            for t in 0..<n {
                ws.tokens[t] = SmallRun.corpus.bytes[window.inputs.lowerBound + t]
                ws.targets[t] = SmallRun.corpus.bytes[window.inputs.lowerBound + t + 1]
            }
            _ = try! model.forward(ws)
            for t in window.firstScored..<n {
                bits -= log2(Double(ws.nextByteProbabilities[t * ModelConfig.vocabulary + Int(ws.targets[t])]))
            }
            bytes += window.scored
        }
        return bits / Double(bytes)
    }

    func testBitsPerByteScoresEachWindowsLastBytes() throws {
        let limit = 1000
        for context in [0, 1, 12, 31] {
            for batch in [1, 3, 16] {
                let evaluator = Evaluator(model: Self.model, corpus: SmallRun.corpus, collective: .local, batch: batch, context: context)
                let bpb = try evaluator.bitsPerByte(.valid, limit: limit)
                XCTAssertEqual(bpb, windowByWindow(.valid, context: context, limit: limit), accuracy: 1e-6 * bpb,
                               "context \(context), batch \(batch)")
            }
        }
    }

    /// C = 0 is the evaluation as it was: the mean of the model's loss over non-overlapping windows.
    func testNoContextIsTheNonOverlappingMeanLoss() throws {
        let model = Self.model, t = model.config.seqLen, valid = SmallRun.corpus.range(.valid)
        var nats = 0.0, bytes = 0
        var start = valid.lowerBound
        while start + 1 < valid.upperBound {
            let n = min(t, valid.upperBound - 1 - start)
            let ws = Workspace<Float>(config: model.config, batch: 1, sequence: n)
            for i in 0..<n { ws.tokens[i] = SmallRun.corpus.bytes[start + i]; ws.targets[i] = SmallRun.corpus.bytes[start + i + 1] }
            nats += try model.forward(ws) * Double(n)
            bytes += n
            start += n
        }
        let evaluator = Evaluator(model: model, corpus: SmallRun.corpus, collective: .local, batch: 1)
        XCTAssertEqual(try evaluator.bitsPerByte(.valid), nats / Double(bytes) / M_LN2, accuracy: 1e-12)
    }
}
