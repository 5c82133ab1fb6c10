/// The feed-forward nonlinearity: ReLU, or GELU in its tanh form.
public enum ActivationKind: String, Codable, CaseIterable, Sendable {
    case relu, gelu
}

/// The architecture: everything that fixes the parameter layout.
public struct ModelConfig: Codable, Equatable, Sendable {
    public static let vocabulary = 256

    public var layers: Int
    public var dModel: Int
    public var heads: Int
    public var ffMult: Int
    public var seqLen: Int
    public var variant: Variant
    public var activation: ActivationKind

    public init(layers: Int = 4, dModel: Int = 256, heads: Int = 4, ffMult: Int = 4, seqLen: Int = 128,
                variant: Variant = .rezero, activation: ActivationKind = .relu) {
        self.layers = layers
        self.dModel = dModel
        self.heads = heads
        self.ffMult = ffMult
        self.seqLen = seqLen
        self.variant = variant
        self.activation = activation
    }

    public var ffWidth: Int { ffMult * dModel }
    public var architecture: Architecture { variant.architecture }

    /// Upper bounds far beyond what fits in memory, which keep every size computed from a
    /// configuration (layout offsets, activation buffers) inside Int, whatever a checkpoint says.
    static let maximum = (layers: 4096, dModel: 32768, heads: 4096, ffMult: 64, seqLen: 16384)

    /// Throws a usage error naming the flag and value of the first invalid field.
    public func validate() throws(RezeroError) {
        let limit = Self.maximum
        try require((1...limit.layers).contains(layers), "--layers", layers, "must be between 1 and \(limit.layers)")
        try require((1...limit.dModel).contains(dModel), "--d-model", dModel, "must be between 1 and \(limit.dModel)")
        try require((1...limit.heads).contains(heads), "--heads", heads, "must be between 1 and \(limit.heads)")
        try require(dModel % heads == 0, "--heads", heads, "must divide --d-model \(dModel)")
        try require((1...limit.ffMult).contains(ffMult), "--ff-mult", ffMult, "must be between 1 and \(limit.ffMult)")
        try require((1...limit.seqLen).contains(seqLen), "--seq-len", seqLen, "must be between 1 and \(limit.seqLen)")
    }

    /// Each field that differs from `other`, as "model.field: other's ≠ this one's".
    public func differences(from other: ModelConfig) -> [String] {
        JSONDifferences.between(JSONCoding.string(other), JSONCoding.string(self), prefix: "model.")
    }

    /// Matmul FLOPs per token of one training step (forward + backward), counting the causal
    /// attention products once: 6·(matmul parameters) + 6·L·T·d.
    public var trainingFlopsPerToken: Double {
        let d = Double(dModel), f = Double(ffWidth), l = Double(layers)
        let matmulParameters = l * (3 * d * d + d * d + 2 * d * f) + d * Double(Self.vocabulary)
        return 6 * matmulParameters + 6 * l * Double(seqLen) * d
    }
}
