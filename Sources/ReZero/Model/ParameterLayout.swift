/// One named tensor inside the flat parameter buffer.
public struct TensorSpec: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case matrix, bias, embedding, norm, alpha
        /// Decoupled weight decay applies to matrices only (not α, biases, norms, embeddings).
        public var decays: Bool { self == .matrix }
        /// LAMB's trust ratio ‖w‖/‖update‖ scales the updates of matrices and embeddings (tables
        /// of vectors, like BERT's LAMB adapts its word embeddings). α, biases and LayerNorm
        /// parameters take the plain AdamW step, as `exclude_from_layer_adaptation` does in common
        /// LAMB implementations: their norm does not set a sensible step size — α starts at 0, and
        /// a ratio |α|/|update| would let it move by at most lr·|α| per step.
        public var layerAdapted: Bool { self == .matrix || self == .embedding }
    }
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public let role: Role
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// Offsets of one layer's tensors; the norms and α exist only in the variants that use them.
public struct LayerOffsets: Sendable {
    public var alpha: Int?
    public var norm1Weight: Int?, norm1Bias: Int?, norm2Weight: Int?, norm2Bias: Int?
    public var qkvWeight = 0, qkvBias = 0, projWeight = 0, projBias = 0
    public var fc1Weight = 0, fc1Bias = 0, fc2Weight = 0, fc2Bias = 0

    /// The LayerNorm (weight, bias) of residual sublayer 0 (attention) or 1 (feed-forward).
    func norm(_ sublayer: Int) -> (weight: Int, bias: Int)? {
        let pair = sublayer == 0 ? (norm1Weight, norm1Bias) : (norm2Weight, norm2Bias)
        guard let weight = pair.0, let bias = pair.1 else { return nil }
        return (weight, bias)
    }
}

/// Where every tensor lives in the one flat buffer that holds all parameters (and, with the same
/// layout, their gradients and the optimizer's moments). Weights are [out, in], as in PyTorch.
public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var count = 0
    public private(set) var tokenEmbedding = 0, positionEmbedding = 0
    public private(set) var layers: [LayerOffsets] = []
    public private(set) var finalNormWeight: Int?, finalNormBias: Int?
    public private(set) var headWeight = 0, headBias = 0

    public init(_ config: ModelConfig) {
        let d = config.dModel, f = config.ffWidth, v = ModelConfig.vocabulary
        let architecture = config.architecture
        tokenEmbedding = add("token_embedding.weight", [v, d], .embedding)
        positionEmbedding = add("position_embedding.weight", [config.seqLen, d], .embedding)
        for l in 0..<config.layers {
            var o = LayerOffsets()
            let p = "layers.\(l)."
            if architecture.hasAlpha { o.alpha = add(p + "alpha", [1], .alpha) }
            if architecture.hasLayerNorms {
                o.norm1Weight = add(p + "norm1.weight", [d], .norm)
                o.norm1Bias = add(p + "norm1.bias", [d], .norm)
            }
            o.qkvWeight = add(p + "attn.qkv.weight", [3 * d, d], .matrix)
            o.qkvBias = add(p + "attn.qkv.bias", [3 * d], .bias)
            o.projWeight = add(p + "attn.proj.weight", [d, d], .matrix)
            o.projBias = add(p + "attn.proj.bias", [d], .bias)
            if architecture.hasLayerNorms {
                o.norm2Weight = add(p + "norm2.weight", [d], .norm)
                o.norm2Bias = add(p + "norm2.bias", [d], .norm)
            }
            o.fc1Weight = add(p + "ffn.fc1.weight", [f, d], .matrix)
            o.fc1Bias = add(p + "ffn.fc1.bias", [f], .bias)
            o.fc2Weight = add(p + "ffn.fc2.weight", [d, f], .matrix)
            o.fc2Bias = add(p + "ffn.fc2.bias", [d], .bias)
            layers.append(o)
        }
        if architecture.finalNorm {
            finalNormWeight = add("final_norm.weight", [d], .norm)
            finalNormBias = add("final_norm.bias", [d], .norm)
        }
        headWeight = add("head.weight", [v, d], .matrix)
        headBias = add("head.bias", [v], .bias)
    }

    public var alphaOffsets: [Int] { layers.compactMap(\.alpha) }

    /// The matrices that write into the residual stream: every layer's attn.proj and ffn.fc2 weights.
    public var residualOutputWeights: [Int] { layers.flatMap { [$0.projWeight, $0.fc2Weight] } }

    /// The final LayerNorm (weight, bias), when the variant has one.
    public var finalNorm: (weight: Int, bias: Int)? {
        guard let weight = finalNormWeight, let bias = finalNormBias else { return nil }
        return (weight, bias)
    }

    // Contiguous parts of the buffer, in the order backward finishes them (for bucketed all-reduce).
    public var embeddingRange: Range<Int> { 0..<layerStart(0) }
    /// A layer's feed-forward tensors (with norm2): final before its attention's backward runs.
    public func feedForwardRange(_ l: Int) -> Range<Int> { feedForwardStart(l)..<layerStart(l + 1) }
    /// A layer's α, norm1 and attention tensors: final when the layer's backward is done.
    public func attentionRange(_ l: Int) -> Range<Int> { layerStart(l)..<feedForwardStart(l) }
    /// The final norm (if any) and the head.
    public var headRange: Range<Int> { layerStart(layers.count)..<count }

    private func feedForwardStart(_ l: Int) -> Int { layers[l].norm2Weight ?? layers[l].fc1Weight }

    private func layerStart(_ l: Int) -> Int {
        guard l < layers.count else { return finalNormWeight ?? headWeight }
        return layers[l].alpha ?? layers[l].norm1Weight ?? layers[l].qkvWeight
    }

    public func tensor(named name: String) -> TensorSpec? { tensors.first { $0.name == name } }

    private mutating func add(_ name: String, _ shape: [Int], _ role: TensorSpec.Role) -> Int {
        let spec = TensorSpec(name: name, shape: shape, offset: count, role: role)
        tensors.append(spec)
        count += spec.count
        return spec.offset
    }
}
