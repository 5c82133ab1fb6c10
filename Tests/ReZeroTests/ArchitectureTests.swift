import XCTest
@testable import ReZero

/// The variant table drives the layout, the activations and the sums: what each variant has, it
/// has exactly once, and the results depend on values alone.
final class ArchitectureTests: XCTestCase {
    /// Every buffer a variant uses is its own memory: no two overlap, and those it does not use
    /// have no copies (so a use traps instead of aliasing a neighbour).
    func testActivationBuffersAreDisjointAndPresentOnlyWhereTheVariantNeedsThem() {
        for variant in Variant.allCases {
            let config = ModelConfig(layers: 3, dModel: 8, heads: 2, ffMult: 2, seqLen: 5, variant: variant)
            let ws = Workspace<Float>(config: config, batch: 2, sequence: 5)
            let a = variant.architecture
            var ranges: [(ActivationBuffer, Range<Int>)] = []
            var total = 0
            for buffer in ActivationBuffer.allCases {
                let size = ActivationBuffer.size(buffer, config, batch: 2, sequence: 5)
                total += size.copies * size.count
                for copy in 0..<size.copies {
                    let start = ws[buffer, copy] - ws[.stream, 0]
                    ranges.append((buffer, start..<(start + size.count)))
                }
                let needed: Bool = switch buffer {
                case .normOut, .normStats, .dNormOut: a.norm == .beforeSublayer
                case .residualSum, .residualSumStats: a.norm == .afterResidual
                case .finalNormOut, .finalNormStats: a.finalNorm
                default: true
                }
                XCTAssertEqual(size.copies > 0, needed, "\(variant) \(buffer)")
            }
            XCTAssertEqual(total, ws.scalarCount, "\(variant)")
            ranges.sort { $0.1.lowerBound < $1.1.lowerBound }
            for (x, y) in zip(ranges, ranges.dropFirst()) {
                XCTAssertLessThanOrEqual(x.1.upperBound, y.1.lowerBound, "\(variant): \(x.0) overlaps \(y.0)")
            }
        }
    }

    func testLayoutFollowsTheVariantTable() {
        for variant in Variant.allCases {
            let a = variant.architecture
            let layout = ParameterLayout(ModelConfig(layers: 2, dModel: 8, heads: 2, ffMult: 2, seqLen: 4, variant: variant))
            XCTAssertEqual(layout.alphaOffsets.count, a.hasAlpha ? 2 : 0, "\(variant)")
            XCTAssertEqual(layout.tensor(named: "layers.1.norm2.weight") != nil, a.hasLayerNorms, "\(variant)")
            XCTAssertEqual(layout.finalNorm != nil, a.finalNorm, "\(variant)")
            let model = Model<Double>(config: ModelConfig(layers: 2, dModel: 8, heads: 2, ffMult: 2, seqLen: 4, variant: variant), seed: 1)
            if case .alpha(let initial) = a.gate { XCTAssertEqual(model.alphas, [initial, initial]) }
        }
    }

    /// GPT-2's recipe: gpt2norm is prenorm with the weights that write into the residual stream
    /// (attn.proj, ffn.fc2) initialised ×1/√(2L); every other tensor is prenorm's, value for value,
    /// and with the same parameters the two compute the same function.
    func testGPT2NormIsPrenormWithResidualOutputsScaledByDepth() throws {
        for layers in [1, 3, 8] {
            let config = ModelConfig(layers: layers, dModel: 8, heads: 2, ffMult: 2, seqLen: 4, variant: .prenorm)
            var gpt2Config = config
            gpt2Config.variant = .gpt2norm
            let prenorm = Model<Double>(config: config, seed: 5), gpt2 = Model<Double>(config: gpt2Config, seed: 5)
            XCTAssertEqual(gpt2.layout.tensors, prenorm.layout.tensors)
            let scale = 1 / Double(2 * layers).squareRoot()
            var scaled = 0
            for spec in prenorm.layout.tensors {
                let residualOutput = spec.name.hasSuffix(".attn.proj.weight") || spec.name.hasSuffix(".ffn.fc2.weight")
                scaled += residualOutput ? 1 : 0
                for i in spec.range {
                    XCTAssertEqual(gpt2.parameters[i], prenorm.parameters[i] * (residualOutput ? scale : 1),
                                   accuracy: 1e-15, "\(layers) layers: \(spec.name)")
                }
            }
            XCTAssertEqual(scaled, 2 * layers)

            let ws = Workspace<Double>(config: config, batch: 2, sequence: 4)
            for i in 0..<ws.rows { ws.tokens[i] = UInt8(17 * i % 256); ws.targets[i] = UInt8(5 * i + 3) }
            let before = try gpt2.forward(ws)
            XCTAssertNotEqual(before, try prenorm.forward(ws), "the scaled init changes the model")
            gpt2.parameters.update(from: prenorm.parameters, count: prenorm.parameterCount)
            XCTAssertEqual(try gpt2.forward(ws), try prenorm.forward(ws), "the same function as prenorm")
        }
    }

    /// `compare` runs the paper's Table 3 by default, GPT2-Norm included, from the variant table.
    func testCompareRunsEveryRowOfTheTableByDefault() {
        XCTAssertEqual(Comparison.defaultRuns.map(\.name),
                       ["rezero", "rezero-alpha1", "postnorm+warmup", "postnorm", "prenorm+warmup", "gpt2norm+warmup"])
    }
}
