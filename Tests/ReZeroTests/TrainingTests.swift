import XCTest
@testable import ReZero
import TestSupport

final class TrainingTests: XCTestCase {
    func testSameSeedGivesByteIdenticalParametersAndDifferentSeedsDiffer() throws {
        let a = SmallRun.parameters(try SmallRun.trained(SmallRun.config(seed: 1), steps: 5))
        let b = SmallRun.parameters(try SmallRun.trained(SmallRun.config(seed: 1), steps: 5))
        let c = SmallRun.parameters(try SmallRun.trained(SmallRun.config(seed: 2), steps: 5))
        XCTAssertEqual(a.withUnsafeBytes { Array($0) }, b.withUnsafeBytes { Array($0) })
        XCTAssertNotEqual(a, c)
    }

    /// Four micro-batches sum to the gradient of the whole batch, up to the order of Float sums;
    /// compared per tensor by norm, since Adam turns the rounding of gradients near its ε into
    /// visible differences of single elements.
    func testGradientAccumulationMatchesOneBigBatch() throws {
        var accumulated = SmallRun.config()
        accumulated.accumSteps = 4
        for steps in [1, 3] {
            let whole = try SmallRun.trained(SmallRun.config(), steps: steps), parts = try SmallRun.trained(accumulated, steps: steps)
            for spec in whole.model.layout.tensors {
                func values(_ p: UnsafeMutablePointer<Float>) -> [Double] { (spec.range).map { Double(p[$0]) } }
                let gradients = relativeError(values(whole.model.gradients), values(parts.model.gradients))
                let parameters = relativeError(values(whole.model.parameters), values(parts.model.parameters))
                XCTAssertLessThan(gradients, 1e-5, "∂\(spec.name) after \(steps) step(s)")
                XCTAssertLessThan(parameters, 1e-5, "\(spec.name) after \(steps) step(s)")
            }
        }
        XCTAssertNotEqual(namedTensors(try SmallRun.trained(SmallRun.config(), steps: 3).model),
                          namedTensors(try SmallRun.trained(SmallRun.config(), steps: 0).model))
    }

    /// Each α moves by Adam-sized steps (about lr each), not by rounding noise.
    func testAlphaLearnsAwayFromZero() throws {
        let trainer = try SmallRun.trained(SmallRun.config(), steps: 5)
        for offset in trainer.model.layout.alphaOffsets {
            XCTAssertGreaterThan(abs(trainer.model.parameters[offset]), 1e-3, "α = \(trainer.model.parameters[offset])")
        }
    }

    /// The parts the overlapped all-reduce sends, in backward's order, tile the buffer exactly.
    func testAllReduceBucketsTileTheParameterBuffer() {
        for variant in Variant.allCases {
            let layout = ParameterLayout(ModelConfig(layers: 3, dModel: 8, heads: 2, ffMult: 2, seqLen: 4, variant: variant))
            var parts = [layout.headRange]
            for l in (0..<3).reversed() { parts += [layout.feedForwardRange(l), layout.attentionRange(l)] }
            parts.append(layout.embeddingRange)
            XCTAssertEqual(parts.sorted { $0.lowerBound < $1.lowerBound }.flatMap { Array($0) }, Array(0..<layout.count), "\(variant)")
            XCTAssertTrue(layout.feedForwardRange(1).contains(layout.tensor(named: "layers.1.ffn.fc2.bias")!.offset))
            if let alpha = layout.layers[1].alpha { XCTAssertTrue(layout.attentionRange(1).contains(alpha)) }
        }
    }

    func testWeightDecayOnlyOnMatrices() {
        let layout = ParameterLayout(ModelConfig(layers: 1, dModel: 4, heads: 1, ffMult: 1, seqLen: 2, variant: .prenorm))
        var config = OptimizerConfig()
        config.weightDecay = 0.5
        let optimizer = Optimizer(config: config, layout: layout)
        var w = [Float](repeating: 1, count: layout.count)
        let g = [Float](repeating: 0, count: layout.count)
        optimizer.step(parameters: &w, gradients: g, learningRate: 0.1)
        for spec in layout.tensors {
            let expected: Float = spec.role == .matrix ? 1 - 0.1 * 0.5 : 1
            XCTAssertEqual(w[spec.offset], expected, accuracy: 1e-6, spec.name)
        }
    }

    func testLAMBTrustRatioScalesUpdates() {
        let layout = ParameterLayout(ModelConfig(layers: 1, dModel: 4, heads: 1, ffMult: 1, seqLen: 2))
        var config = OptimizerConfig()
        config.kind = .lamb
        config.weightDecay = 0
        let optimizer = Optimizer(config: config, layout: layout)
        var w = [Float](repeating: 2, count: layout.count)
        let g = [Float](repeating: 1, count: layout.count)
        optimizer.step(parameters: &w, gradients: g, learningRate: 0.1)
        // Adam's first update is ±1 per element; LAMB rescales it by ‖w‖/‖u‖ = 2.
        XCTAssertEqual(w[0], 2 - 0.1 * 2, accuracy: 1e-5)
    }

    /// LAMB gives α (here starting at 0, as in ReZero), biases and LayerNorm parameters exactly
    /// AdamW's step, and rescales each matrix's and embedding's step to ‖Δw‖ = lr·‖w‖.
    func testLAMBExcludesAlphaBiasesAndNormsFromLayerAdaptation() {
        for variant in [Variant.rezero, .prenorm] {
            let layout = ParameterLayout(ModelConfig(layers: 2, dModel: 8, heads: 2, ffMult: 2, seqLen: 4, variant: variant))
            let adam = Optimizer(config: OptimizerConfig(), layout: layout)
            var lambConfig = OptimizerConfig()
            lambConfig.kind = .lamb
            let lamb = Optimizer(config: lambConfig, layout: layout)
            var start = (0..<layout.count).map { Float(CounterRandom.normal(seed: 1, stream: 1, counter: UInt64($0))) }
            for offset in layout.alphaOffsets { start[offset] = 0 }
            var a = start, b = start
            let lr = 0.01
            for step in 0..<10 {
                let g = (0..<layout.count).map {
                    Float(0.1 + CounterRandom.normal(seed: 2, stream: UInt64(step), counter: UInt64($0)))
                }
                let before = b
                adam.step(parameters: &a, gradients: g, learningRate: lr)
                lamb.step(parameters: &b, gradients: g, learningRate: lr)
                for spec in layout.tensors where spec.role.layerAdapted {
                    let w = spec.range.map { Double(before[$0]) }, delta = spec.range.map { Double(b[$0] - before[$0]) }
                    XCTAssertEqual(norm(delta) / (lr * norm(w)), 1, accuracy: 1e-4, "\(variant) \(spec.name) step \(step)")
                }
            }
            for spec in layout.tensors where !spec.role.layerAdapted {
                XCTAssertEqual(Array(a[spec.range]), Array(b[spec.range]), "\(variant) \(spec.name)")
            }
            XCTAssertEqual(layout.tensors.filter { !$0.role.layerAdapted }.count,
                           layout.tensors.filter { [.alpha, .bias, .norm].contains($0.role) }.count)
            for offset in layout.alphaOffsets { XCTAssertGreaterThan(abs(b[offset]), Float(5 * lr), "α left 0") }
        }
    }

    /// In training: ReZero's α grow as fast under LAMB as under AdamW.
    func testAlphaLeavesZeroUnderLAMBAsUnderAdam() throws {
        var adam = SmallRun.config()
        adam.steps = 30
        var lamb = adam
        lamb.optimizer.kind = .lamb
        let underAdam = try SmallRun.trained(adam, steps: 30).model.alphas, underLAMB = try SmallRun.trained(lamb, steps: 30).model.alphas
        print("α after 30 steps: AdamW \(underAdam), LAMB \(underLAMB)")
        for (x, y) in zip(underAdam, underLAMB) {
            XCTAssertGreaterThan(abs(y), 0.5 * abs(x))
            XCTAssertLessThan(abs(y), 2 * abs(x))
        }
    }

    func testSchedules() {
        let warm = Schedule(kind: .warmup, baseRate: 1, warmupSteps: 10, totalSteps: 100)
        XCTAssertEqual(warm.rate(at: 5), 0.5)
        XCTAssertEqual(warm.rate(at: 50), 1)
        let cosine = Schedule(kind: .cosine, baseRate: 1, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(cosine.rate(at: 10), 1)
        XCTAssertEqual(cosine.rate(at: 60), 0.55, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 110), 0.1, accuracy: 1e-12)
        XCTAssertEqual(Schedule(kind: .constant, baseRate: 2, warmupSteps: 10, totalSteps: 5).rate(at: 1), 2)
    }

    func testDebugModeNamesTheFirstNonFiniteTensor() throws {
        let config = SmallRun.config(variant: .rezeroAlpha1)
        let trainer = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local, debug: true)
        let qkv = trainer.model.layout.tensor(named: "layers.1.attn.qkv.weight")!
        trainer.model.parameters[qkv.offset] = .nan
        let result = try trainer.step()
        XCTAssertFalse(result.applied, "a step with a non-finite value is not applied")
        XCTAssertEqual(trainer.state.step, 0)
        let message = try XCTUnwrap(result.nonFinite?.description)
        XCTAssertTrue(message.contains("attn.qkv") && message.contains("layer 1") && message.contains("step 1"), message)
    }

    func testNonFiniteLossStopsTrainingAsDiverged() throws {
        var config = SmallRun.config()
        config.steps = 20
        let trainer = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local)
        trainer.model.parameters[trainer.model.layout.headBias] = .infinity
        let summary = try TrainingRun(trainer: trainer, runDirectory: nil, log: { _ in }).run()
        XCTAssertEqual(summary.status, .diverged)
        XCTAssertEqual(summary.step, 1)
        XCTAssertEqual(trainer.state.step, 0, "the non-finite step is not applied")
        XCTAssertEqual(trainer.model.parameters[trainer.model.layout.headBias], .infinity)
    }

    /// A configuration written before a field existed (a checkpoint's, a config.json) reads with
    /// that field's default; the keys it has keep their values, nested ones and 64-bit seeds included.
    func testConfigWithoutANewerKeyReadsWithItsDefault() throws {
        var config = SmallRun.config(seed: .max - 1)
        config.model.variant = .postnorm
        config.evalContext = 5
        XCTAssertEqual(try TrainingConfig.decode(json: config.json()), config)
        var older = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(config.json().utf8)) as? [String: Any])
        older["eval_context"] = nil
        var model = try XCTUnwrap(older["model"] as? [String: Any])
        model["activation"] = nil
        older["model"] = model
        let decoded = try TrainingConfig.decode(json: String(decoding: JSONSerialization.data(withJSONObject: older), as: UTF8.self))
        var expected = config
        expected.evalContext = 0
        expected.model.activation = ModelConfig().activation
        XCTAssertEqual(decoded, expected)
        XCTAssertThrowsError(try TrainingConfig.decode(json: #"{"model": {"layers": "four"}}"#))
    }

    /// A model can hold a non-finite value while the loss and gradient stay finite (here an
    /// infinite second moment, which freezes its parameter): no checkpoint is written with it,
    /// `latest` keeps naming the last finite one, and the run ends as diverged. A file holding
    /// one is refused by the loader.
    func testNoCheckpointHoldsANonFiniteValue() throws {
        let dir = Paths.temporaryDirectory("nonfinite")
        var config = SmallRun.config()
        config.steps = 2
        config.checkpointEvery = 1
        let first = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local)
        XCTAssertEqual(try TrainingRun(trainer: first, runDirectory: dir, log: { _ in }).run().status, .completed)
        let good = try CheckpointDirectory(dir).latestValid { XCTFail($0) }
        config.steps = 6
        let resumed = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local, resume: good)
        let bias = resumed.model.layout.headBias
        resumed.optimizer.secondMoment[bias] = .infinity
        let summary = try TrainingRun(trainer: resumed, runDirectory: dir, resumedAt: 2, log: { _ in }).run()
        XCTAssertEqual(summary.status, .diverged)
        XCTAssertTrue(summary.message?.contains("optim.v.head.bias[0] = inf") ?? false, summary.message ?? "")
        XCTAssertEqual(summary.step, 3)
        XCTAssertEqual(CheckpointDirectory(dir).latestName, URL(fileURLWithPath: good.path).lastPathComponent)
        XCTAssertEqual(CheckpointDirectory(dir).checkpoints().map { URL(fileURLWithPath: $0).lastPathComponent },
                       ["ckpt-00000001.safetensors", "ckpt-00000002.safetensors"])

        let poisoned = Checkpoint.encode(config: resumed.config, state: resumed.state, corpus: SmallRun.corpus.identity,
                                         layout: resumed.model.layout, parameters: resumed.model.parameters,
                                         optimizer: resumed.optimizer)
        XCTAssertThrowsError(try Checkpoint.decode(poisoned, path: "poisoned")) {
            XCTAssertTrue("\($0)".contains("tensor optim.v.head.bias holds a non-finite value at element 0"), "\($0)")
        }
    }

    func testInvalidConfigurationsNameTheFlag() {
        var c = SmallRun.config()
        c.model.heads = 5
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--heads 5")) }
        c = SmallRun.config()
        c.model.seqLen = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--seq-len 0")) }
        c = SmallRun.config()
        c.batchSize = 6
        XCTAssertThrowsError(try c.validate(worldSize: 4)) { XCTAssertTrue("\($0)".contains("--batch-size 6")) }
        XCTAssertThrowsError(try Corpus(name: "tiny", bytes: Array(repeating: 65, count: 100)).validate(sequence: 32)) {
            XCTAssertTrue("\($0)".contains("--seq-len"))
        }
    }

    /// The default corpus's floor is known exactly; a small model must get within 0.15 bits/byte of
    /// it (measured on the validation split) in well under a minute.
    func testSmallModelApproachesSyntheticEntropyRate() throws {
        let corpus = SyntheticSource.standard.corpus()
        var c = TrainingConfig()
        c.model = ModelConfig(layers: 2, dModel: 64, heads: 2, ffMult: 4, seqLen: 128)
        c.batchSize = 16
        c.steps = 800
        c.learningRate = 3e-3
        c.warmup = 50
        c.evalEvery = 0
        c.evalBytes = 0
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        let trainer = try Trainer(config: c, corpus: corpus, collective: .local)
        let start = Date()
        let summary = try TrainingRun(trainer: trainer, runDirectory: nil, log: { _ in }).run()
        let gap = summary.validBpb! - corpus.entropyRate!
        print(String(format: "synthetic corpus: valid %.4f bpb, entropy rate %.4f, gap %.4f, %.1f s",
                     summary.validBpb!, corpus.entropyRate!, gap, Date().timeIntervalSince(start)))
        XCTAssertLessThan(gap, 0.15)
        XCTAssertGreaterThan(gap, -0.02, "no model can beat the source's entropy rate by more than sampling noise")
    }

    func testCheckpointResumeIsBitExact() throws {
        let dir = Paths.temporaryDirectory("resume")
        var config = SmallRun.config()
        config.steps = 10
        let whole = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local)
        for _ in 0..<10 { try whole.step() }

        let first = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local)
        for _ in 0..<4 { try first.step() }
        let directory = try RunDirectory(path: dir, config: config, corpus: SmallRun.corpus.identity, resumedAt: nil,
                                         warn: { XCTFail($0) })
        let loaded = try Checkpoint.load(path: directory.saveCheckpoint(first, validBpb: nil))
        XCTAssertEqual(loaded.state.step, 4)
        let second = try Trainer(config: config, corpus: SmallRun.corpus, collective: .local, resume: loaded)
        for _ in 0..<6 { try second.step() }
        let n = whole.model.parameterCount
        for (a, b) in [(whole.model.parameters, second.model.parameters),
                       (whole.optimizer.firstMoment, second.optimizer.firstMoment),
                       (whole.optimizer.secondMoment, second.optimizer.secondMoment)] {
            XCTAssertEqual(memcmp(a, b, n * 4), 0)
        }
    }
}
