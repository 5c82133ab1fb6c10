/// Activation and activation-gradient buffers for one (batch, sequence) shape, carved out of one
/// allocation made up front: a training step allocates nothing.
public final class Workspace<S: TensorScalar> {
    public struct LayerActivations {
        /// LayerNorm outputs feeding attention / FFN (Pre-LN) and their row statistics.
        var norm1: UnsafeMutablePointer<S>, norm2: UnsafeMutablePointer<S>
        var mean1: UnsafeMutablePointer<S>, rstd1: UnsafeMutablePointer<S>
        var mean2: UnsafeMutablePointer<S>, rstd2: UnsafeMutablePointer<S>
        var qkv: UnsafeMutablePointer<S>, probabilities: UnsafeMutablePointer<S>
        var heads: UnsafeMutablePointer<S>, attnOut: UnsafeMutablePointer<S>
        /// x + Attn before the Post-LN norm; the stream between the two sublayers.
        var sum1: UnsafeMutablePointer<S>, mid: UnsafeMutablePointer<S>
        var fc1Pre: UnsafeMutablePointer<S>, fc1Act: UnsafeMutablePointer<S>
        var ffnOut: UnsafeMutablePointer<S>, sum2: UnsafeMutablePointer<S>
    }

    public let batch: Int, sequence: Int
    public var rows: Int { batch * sequence }
    public let tokens: UnsafeMutablePointer<UInt8>, targets: UnsafeMutablePointer<UInt8>
    /// residual[l] is the input of layer l; residual[L] the output of the last layer.
    var residual: [UnsafeMutablePointer<S>] = []
    var layers: [LayerActivations] = []
    var finalNorm: UnsafeMutablePointer<S>, finalMean: UnsafeMutablePointer<S>, finalRstd: UnsafeMutablePointer<S>
    /// Softmax probabilities after the forward pass (the logits are overwritten in place).
    public internal(set) var logits: UnsafeMutablePointer<S>
    // Gradient scratch, shared by all layers.
    var dResidual: UnsafeMutablePointer<S>, dBranch: UnsafeMutablePointer<S>, dHeads: UnsafeMutablePointer<S>
    var dQKV: UnsafeMutablePointer<S>, dFC: UnsafeMutablePointer<S>, dScores: UnsafeMutablePointer<S>
    var dLogits: UnsafeMutablePointer<S>

    private let storage: UnsafeMutablePointer<S>
    public let scalarCount: Int

    /// Threads the attention shares its (sequence, head) pairs among; each needs its own scratch.
    public let attentionWorkers: Int

    public init(config: ModelConfig, batch: Int, sequence: Int, attentionWorkers: Int = 1) {
        precondition(sequence <= config.seqLen && sequence >= 1 && batch >= 1)
        self.batch = batch
        self.sequence = sequence
        self.attentionWorkers = Swift.max(1, attentionWorkers)
        let n = batch * sequence, d = config.dModel, f = config.ffWidth
        let v = ModelConfig.vocabulary, h = config.heads
        let norms = config.variant.hasLayerNorms
        let postnorm = config.variant == .postnorm
        let prenorm = config.variant == .prenorm

        // Two passes over the same carving: the first counts, the second hands out pointers.
        var sizes: [Int] = []
        func carve(_ count: Int) { sizes.append(count) }
        func layerSizes() {
            carve(prenorm ? n * d : 0); carve(prenorm ? n * d : 0)
            for _ in 0..<4 { carve(norms ? n : 0) }
            carve(n * 3 * d); carve(batch * h * sequence * sequence)
            carve(n * d); carve(n * d)
            carve(postnorm ? n * d : 0); carve(n * d)
            carve(n * f); carve(n * f)
            carve(n * d); carve(postnorm ? n * d : 0)
        }
        for _ in 0...config.layers { carve(n * d) }
        for _ in 0..<config.layers { layerSizes() }
        carve(config.variant.hasFinalNorm ? n * d : 0); carve(n); carve(n)
        carve(n * v)
        carve(n * d); carve(n * d); carve(n * d); carve(n * 3 * d); carve(n * f)
        carve(self.attentionWorkers * sequence * sequence); carve(n * v)

        scalarCount = sizes.reduce(0, +)
        storage = .allocate(capacity: Swift.max(scalarCount, 1))
        storage.initialize(repeating: 0, count: Swift.max(scalarCount, 1))
        tokens = .allocate(capacity: n)
        tokens.initialize(repeating: 0, count: n)
        targets = .allocate(capacity: n)
        targets.initialize(repeating: 0, count: n)

        var cursor = storage
        var index = 0
        func next() -> UnsafeMutablePointer<S> {
            defer { cursor += sizes[index]; index += 1 }
            return cursor
        }
        residual = (0...config.layers).map { _ in next() }
        for _ in 0..<config.layers {
            layers.append(LayerActivations(
                norm1: next(), norm2: next(), mean1: next(), rstd1: next(), mean2: next(), rstd2: next(),
                qkv: next(), probabilities: next(), heads: next(), attnOut: next(),
                sum1: next(), mid: next(), fc1Pre: next(), fc1Act: next(), ffnOut: next(), sum2: next()))
        }
        finalNorm = next(); finalMean = next(); finalRstd = next()
        logits = next()
        dResidual = next(); dBranch = next(); dHeads = next(); dQKV = next(); dFC = next()
        dScores = next(); dLogits = next()
    }

    deinit {
        storage.deallocate()
        tokens.deallocate()
        targets.deallocate()
    }

    public var bytes: Int { scalarCount * MemoryLayout<S>.stride + 2 * rows }
}
