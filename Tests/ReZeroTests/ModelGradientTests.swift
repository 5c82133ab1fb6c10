import XCTest
@testable import ReZero

/// The whole model's gradient — every tensor, every α — against finite differences in Double,
/// for every variant, at α = 0 (init) and α ≠ 0, with GELU and with ReLU, without and with dropout.
final class ModelGradientTests: XCTestCase {
    func check(_ variant: Variant, _ activation: ActivationKind, alpha: Double?, dropout: Double = 0) throws {
        let config = ModelConfig(layers: 2, dModel: 8, heads: 2, ffMult: 2, seqLen: 5, variant: variant, activation: activation)
        let results = try GradientCheck.run(config: config, alpha: alpha, dropout: dropout)
        let perLayer = ["attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                        "ffn.fc1.weight", "ffn.fc1.bias", "ffn.fc2.weight", "ffn.fc2.bias"]
            + (variant.architecture.hasAlpha ? ["alpha"] : [])
            + (variant.architecture.hasLayerNorms ? ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"] : [])
        let expected = ["token_embedding.weight", "position_embedding.weight", "head.weight", "head.bias"]
            + (0..<2).flatMap { l in perLayer.map { "layers.\(l).\($0)" } }
            + (variant.architecture.finalNorm ? ["final_norm.weight", "final_norm.bias"] : [])
        XCTAssertEqual(Set(results.map(\.name)), Set(expected), "every tensor checked, \(variant)")
        for r in results {
            XCTAssertLessThanOrEqual(r.relativeError, 1e-6, "\(variant) \(activation) α=\(String(describing: alpha)) dropout \(dropout) \(r.name)")
        }
        let alphas = results.filter { $0.name.hasSuffix(".alpha") }
        XCTAssertEqual(alphas.count, variant.architecture.hasAlpha ? 2 : 0)
        // α receives a real gradient even at α = 0, which is what lets ReZero leave the identity.
        for a in alphas { XCTAssertGreaterThan(a.gradientNorm, 1e-6, a.name) }
        if variant == .rezero && alpha == nil {
            // At α = 0 the sublayers are switched off: their weights get exactly zero gradient.
            for r in results where r.name.contains(".attn.") || r.name.contains(".ffn.") {
                XCTAssertEqual(r.gradientNorm, 0, r.name)
            }
        }
    }

    func testAllVariantsGELU() throws {
        for variant in Variant.allCases {
            try check(variant, .gelu, alpha: nil)
            if variant.architecture.hasAlpha { try check(variant, .gelu, alpha: 0.7) }
        }
    }

    /// Dropout on every site (attention probabilities, activation, both branches), its masks fixed
    /// by one step's key so that the finite differences see the same function.
    func testAllVariantsWithDropout() throws {
        for variant in Variant.allCases {
            try check(variant, .gelu, alpha: variant.architecture.hasAlpha ? 0.7 : nil, dropout: 0.3)
        }
    }

    func testAllVariantsReLU() throws {
        for variant in Variant.allCases {
            try check(variant, .relu, alpha: nil)
            if variant.architecture.hasAlpha { try check(variant, .relu, alpha: -0.4) }
        }
    }

    func testRezeroAtInitIsIdentityPlusHead() throws {
        // With α = 0 every layer is the identity, so the loss is that of embedding → head.
        let config = ModelConfig(layers: 3, dModel: 8, heads: 2, ffMult: 2, seqLen: 4)
        let deep = Model<Double>(config: config, seed: 3)
        var shallowConfig = config
        shallowConfig.layers = 1
        let shallow = Model<Double>(config: shallowConfig, seed: 3)
        let wsDeep = Workspace<Double>(config: config, batch: 1, sequence: 4)
        let wsShallow = Workspace<Double>(config: shallowConfig, batch: 1, sequence: 4)
        for ws in [wsDeep, wsShallow] {
            for i in 0..<4 { ws.tokens[i] = UInt8(10 * i); ws.targets[i] = UInt8(7 * i + 1) }
        }
        // Same embeddings and head in both: copy them over.
        for name in ["token_embedding.weight", "position_embedding.weight", "head.weight", "head.bias"] {
            let a = deep.layout.tensor(named: name)!, b = shallow.layout.tensor(named: name)!
            (shallow.parameters + b.offset).update(from: deep.parameters + a.offset, count: a.count)
        }
        XCTAssertEqual(try deep.forward(wsDeep), try shallow.forward(wsShallow))
    }
}
