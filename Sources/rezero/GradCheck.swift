import ArgumentParser
import Foundation
import ReZero

struct GradCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check the whole model's gradient, every tensor and every α, against central finite differences in Double.",
        discussion: "For each variant: at initialization (α = 0 for rezero) and with α ≠ 0. Fails (exit 1) if any tensor's relative error exceeds --tolerance.")

    @Option(help: "Variant to check (default: all).") var variant: Variant?
    @Option(help: "FFN activation (gelu has no kink for finite differences to straddle).") var activation: ActivationKind = .gelu
    @Option(help: "Layers.") var layers: Int = 2
    @Option(name: .customLong("d-model"), help: "Width.") var dModel: Int = 8
    @Option(help: "Heads.") var heads: Int = 2
    @Option(name: .customLong("seq-len"), help: "Sequence length.") var seqLen: Int = 5
    @Option(help: "Dropout probability on every site, with the masks of one fixed step (0: none).") var dropout: Double = 0
    @Option(help: "Maximum relative error per tensor.") var tolerance: Double = 1e-6

    func validate() throws {
        do { try config(.rezero).validate() } catch { throw ValidationError("\(error)") }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout \(dropout): must be at least 0 and below 1") }
    }

    private func config(_ variant: Variant) -> ModelConfig {
        ModelConfig(layers: layers, dModel: dModel, heads: heads, ffMult: 2, seqLen: seqLen, variant: variant, activation: activation)
    }

    func run() throws {
        var worst = 0.0
        for v in variant.map({ [$0] }) ?? Variant.allCases {
            let points: [(label: String, alpha: Double?)] = switch v.architecture.gate {
            case .alpha(let initial): [("α at init (\(initial))", nil), ("α = 0.7 + 0.1·layer", 0.7)]
            case .identity: [("init", nil)]
            }
            for point in points {
                print("\(v.rawValue), \(activation.rawValue), \(point.label)\(dropout > 0 ? ", dropout \(dropout)" : ""):")
                for r in try GradientCheck.run(config: config(v), alpha: point.alpha, dropout: dropout) {
                    let flag = r.relativeError > tolerance ? "  FAIL" : ""
                    print(String(format: "  %-28@ rel err %.2e   |grad| %.3e%@", r.name as NSString, r.relativeError, r.gradientNorm, flag))
                    worst = max(worst, r.relativeError)
                }
            }
        }
        print(String(format: "worst relative error %.2e (tolerance %.0e): %@", worst, tolerance, worst <= tolerance ? "pass" : "FAIL"))
        if worst > tolerance { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}
