/// The residual wiring of each layer: the rows of the paper's Table 3. Everything that makes one
/// variant differ from another is its `Architecture`; the parameter layout, the activation buffers,
/// initialization and the model's forward and backward passes all read it from here.
public enum Variant: String, Codable, CaseIterable, Sendable {
    case rezero
    case rezeroAlpha1 = "rezero-alpha1"
    case postnorm
    case prenorm
    case gpt2norm

    public var architecture: Architecture {
        switch self {
        case .rezero:
            Architecture(formula: "h = x + α·Attn(x); y = h + α·FFN(h); α = 0 at init, no LayerNorm",
                         gate: .alpha(initial: 0), norm: .none, finalNorm: false, residualOutputInit: .xavier,
                         comparisonRows: [.noWarmup])
        case .rezeroAlpha1:
            Architecture(formula: "the same with α = 1 at init",
                         gate: .alpha(initial: 1), norm: .none, finalNorm: false, residualOutputInit: .xavier,
                         comparisonRows: [.noWarmup])
        case .postnorm:
            Architecture(formula: "h = LN(x + Attn(x)); y = LN(h + FFN(h)) (the original Transformer)",
                         gate: .identity, norm: .afterResidual, finalNorm: false, residualOutputInit: .xavier,
                         comparisonRows: [.warmup, .noWarmup])
        case .prenorm:
            Architecture(formula: "h = x + Attn(LN(x)); y = h + FFN(LN(h)); a final LN before the head",
                         gate: .identity, norm: .beforeSublayer, finalNorm: true, residualOutputInit: .xavier,
                         comparisonRows: [.warmup])
        case .gpt2norm:
            Architecture(formula: "prenorm with GPT-2's initialization: attn.proj and ffn.fc2 weights scaled by 1/√(2L)",
                         gate: .identity, norm: .beforeSublayer, finalNorm: true, residualOutputInit: .scaledByDepth,
                         comparisonRows: [.warmup])
        }
    }
}

/// A variant's facts. Each layer has two residual sublayers (attention, then feed-forward); a
/// sublayer maps the residual stream x to
///
///     x + g·F(x)        norm == .none
///     x + g·F(LN(x))    norm == .beforeSublayer
///     LN(x + g·F(x))    norm == .afterResidual
///
/// with g the gate: 1, or the layer's α (one scalar shared by both sublayers).
public struct Architecture: Sendable {
    public enum Gate: Sendable, Equatable {
        case identity
        /// One trainable α per layer, starting at `initial`.
        case alpha(initial: Double)
    }

    public enum NormPlacement: Sendable, Equatable {
        case none
        /// LayerNorm at the input of each sublayer (`norm1` before attention, `norm2` before the FFN).
        case beforeSublayer
        /// LayerNorm after each residual sum (`norm1` after attention's, `norm2` after the FFN's).
        case afterResidual
    }

    /// The initial weights of each sublayer's last matrix, the one that writes into the residual
    /// stream (attn.proj, ffn.fc2).
    public enum ResidualOutputInit: Sendable, Equatable {
        /// Xavier-uniform, like every other matrix.
        case xavier
        /// Xavier-uniform scaled by 1/√(number of residual sublayers) = 1/√(2L), GPT-2's recipe
        /// (Radford et al. 2019, §2.3), so that the stream's variance at init does not grow with depth.
        case scaledByDepth

        /// The factor on the Xavier-uniform weights of a model with `layers` layers.
        public func scale(layers: Int) -> Double {
            self == .scaledByDepth ? 1 / Double(2 * layers).squareRoot() : 1
        }
    }

    /// How `rezero compare` runs the variant by default: with warm-up, without, or both.
    public enum ComparisonRow: Sendable { case warmup, noWarmup }

    /// The layer in one line, for `--help` and the README.
    public let formula: String
    public let gate: Gate
    public let norm: NormPlacement
    /// A LayerNorm between the last layer and the head.
    public let finalNorm: Bool
    public let residualOutputInit: ResidualOutputInit
    public let comparisonRows: [ComparisonRow]

    public var hasAlpha: Bool { gate != .identity }
    public var hasLayerNorms: Bool { norm != .none }
}
