import ArgumentParser
import Foundation
import ReZero

struct GradCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check the whole model's gradient, every tensor and every α, against central finite differences in Double.",
        discussion: "For each variant: at initialization (α = 0 for rezero) and with α ≠ 0. Fails if any tensor's relative error exceeds --tolerance.")

    @Option(help: "Variant to check (default: all four).") var variant: Variant?
    @Option(help: "FFN activation (default: gelu, which has no kink for finite differences to straddle).") var activation: ActivationKind = .gelu
    @Option(help: "Layers (default: 2).") var layers: Int = 2
    @Option(name: .customLong("d-model"), help: "Width (default: 8).") var dModel: Int = 8
    @Option(help: "Heads (default: 2).") var heads: Int = 2
    @Option(name: .customLong("seq-len"), help: "Sequence length (default: 5).") var seqLen: Int = 5
    @Option(help: "Maximum relative error per tensor (default: 1e-6).") var tolerance: Double = 1e-6

    func run() throws {
        let variants = variant.map { [$0] } ?? Variant.allCases
        var worst = 0.0
        for v in variants {
            let config = ModelConfig(layers: layers, dModel: dModel, heads: heads, ffMult: 2, seqLen: seqLen,
                                     variant: v, activation: activation)
            do { try config.validate() } catch { fail("\(error)") }
            let points: [(String, Double?)] = v.hasAlpha ? [("α at init (\(v.alphaInit))", nil), ("α = 0.7 + 0.1·layer", 0.7)] : [("init", nil)]
            for (label, alpha) in points {
                print("\(v.rawValue), \(activation.rawValue), \(label):")
                let results = try GradientCheck.run(config: config, alpha: alpha)
                for r in results {
                    let flag = r.relativeError > tolerance ? "  FAIL" : ""
                    print(String(format: "  %-28@ rel err %.2e   |grad| %.3e%@", r.name as NSString, r.relativeError, r.gradientNorm, flag))
                    worst = max(worst, r.relativeError)
                }
            }
        }
        print(String(format: "worst relative error %.2e (tolerance %.0e): %@", worst, tolerance, worst <= tolerance ? "pass" : "FAIL"))
        if worst > tolerance { throw ExitCode(1) }
    }
}
