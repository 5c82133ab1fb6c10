/// Every activation buffer of the model, llm.c's `act_sizes`: what it holds and its shape, with
/// B batch, T sequence, d width, f feed-forward width, H heads, V = 256 and L layers. A layer is
/// two residual sublayers, s = 2l (attention) and s = 2l + 1 (feed-forward); see `Architecture`.
/// A buffer that the variant does not use has no copies, and asking for it traps.
enum ActivationBuffer: Int, CaseIterable, Sendable {
    /// [2L+1 × B,T,d] the residual stream: entry s enters sublayer s; entry 2L leaves the last layer.
    case stream
    /// [2L × B,T,d] LN(stream) feeding sublayer s — norm before the sublayer.
    case normOut
    /// [2L × 2,B,T] that LayerNorm's row means, then its rows' 1/σ — norm before the sublayer.
    case normStats
    /// [2L × B,T,d] the sublayer's output F(·), before the gate.
    case branch
    /// [2L × B,T,d] stream + gated branch, the LayerNorm's input — norm after the residual.
    case residualSum
    /// [2L × 2,B,T] that LayerNorm's row means, then its rows' 1/σ — norm after the residual.
    case residualSumStats
    /// [L × B,T,3d] the fused projections Q | K | V.
    case qkv
    /// [L × B,H,T] the log-sum-exp of each attention row's scaled scores: backward recomputes the
    /// probabilities from it, so attention keeps O(T) per (sequence, head), not T².
    case logSumExp
    /// [L × B,T,d] softmax(QKᵀ)V with the heads side by side, before the output projection.
    case heads
    /// [L × B,T,f] the first feed-forward product, before the activation.
    case hidden
    /// [L × B,T,f] the activation of `hidden`.
    case activated
    /// [B,T,d] the final LayerNorm's output — final norm only.
    case finalNormOut
    /// [2,B,T] its row means, then its rows' 1/σ — final norm only.
    case finalNormStats
    /// [B,T,V] the logits, overwritten in place by their softmax.
    case logits
    /// [B,T] each position's loss, −log p(target) in nats.
    case tokenLoss
    // Gradient scratch, reused by every layer:
    /// [B,T,d] ∂L/∂stream, carried from the head down to the embeddings (first ∂L/∂finalNormOut).
    case dStream
    /// [B,T,d] ∂L/∂branch when it differs from ∂L/∂output: α·∂L/∂output, or dropout's mask on it.
    case dBranch
    /// [B,T,d] ∂L/∂normOut — norm before the sublayer.
    case dNormOut
    /// [B,T,d] ∂L/∂heads.
    case dHeads
    /// [B,T,3d] ∂L/∂qkv.
    case dQKV
    /// [B,T,f] ∂L/∂activated, then ∂L/∂hidden in place.
    case dHidden
    /// [block,T] or [block,key tile] (`Attention.scratchCount`): a block of scores and their
    /// gradients, recomputed block by block.
    case attentionScratch
    /// [B,T,V] ∂L/∂logits.
    case dLogits

    /// (copies, elements per copy) for a model and a (batch, sequence) shape.
    static func size(_ buffer: ActivationBuffer, _ c: ModelConfig, batch b: Int, sequence t: Int) -> (copies: Int, count: Int) {
        let a = c.architecture, l = c.layers, d = c.dModel, f = c.ffWidth, v = ModelConfig.vocabulary
        let rows = b * t, sublayers = 2 * l
        let pre = a.norm == .beforeSublayer, post = a.norm == .afterResidual
        switch buffer {
        case .stream: return (sublayers + 1, rows * d)
        case .normOut: return (pre ? sublayers : 0, rows * d)
        case .normStats: return (pre ? sublayers : 0, rows * 2)
        case .branch: return (sublayers, rows * d)
        case .residualSum: return (post ? sublayers : 0, rows * d)
        case .residualSumStats: return (post ? sublayers : 0, rows * 2)
        case .qkv: return (l, rows * 3 * d)
        case .logSumExp: return (l, b * c.heads * t)
        case .heads: return (l, rows * d)
        case .hidden, .activated: return (l, rows * f)
        case .finalNormOut: return (a.finalNorm ? 1 : 0, rows * d)
        case .finalNormStats: return (a.finalNorm ? 1 : 0, rows * 2)
        case .logits, .dLogits: return (1, rows * v)
        case .tokenLoss: return (1, rows)
        case .dStream, .dHeads: return (1, rows * d)
        case .dBranch: return (1, rows * d)
        case .dNormOut: return (pre ? 1 : 0, rows * d)
        case .dQKV: return (1, rows * 3 * d)
        case .dHidden: return (1, rows * f)
        case .attentionScratch:
            // Enough for either path, and for any block up to the tuned one (tests use smaller).
            let shape = Attention.tunedShape(batch: b, sequence: t, width: d, heads: c.heads)
            return (1, Attention.Path.allCases.map { Attention.scratchCount(shape, path: $0) }.max()!)
        }
    }
}

/// The activations of one (batch, sequence) shape, every `ActivationBuffer` carved out of one
/// allocation made up front: a training step allocates nothing.
final class Workspace<S: TensorScalar> {
    let batch: Int, sequence: Int
    var rows: Int { batch * sequence }
    let tokens: UnsafeMutablePointer<UInt8>, targets: UnsafeMutablePointer<UInt8>
    /// What this pass's dropout masks are keyed by; nil: no dropout (evaluation, sampling).
    var dropout: DropoutKey?
    /// Elements of all buffers together.
    let scalarCount: Int

    private let storage: UnsafeMutablePointer<S>
    /// Per buffer: its first copy (nil when the variant has none), elements per copy, copies.
    private let starts: [UnsafeMutablePointer<S>?]
    private let counts: [Int], copies: [Int]

    init(config: ModelConfig, batch: Int, sequence: Int) {
        precondition(sequence <= config.seqLen && sequence >= 1 && batch >= 1)
        self.batch = batch
        self.sequence = sequence
        let sizes = ActivationBuffer.allCases.map {
            ActivationBuffer.size($0, config, batch: batch, sequence: sequence)
        }
        scalarCount = Self.scalarCount(config, batch: batch, sequence: sequence)!
        storage = TensorMemory.allocate(S.self, count: scalarCount)
        var cursor = storage
        starts = sizes.map { size in
            guard size.copies > 0 else { return nil }
            defer { cursor += size.copies * size.count }
            return cursor
        }
        counts = sizes.map(\.count)
        copies = sizes.map(\.copies)
        tokens = .allocate(capacity: batch * sequence)
        tokens.initialize(repeating: 0, count: batch * sequence)
        targets = .allocate(capacity: batch * sequence)
        targets.initialize(repeating: 0, count: batch * sequence)
    }

    /// Elements of all buffers of a (batch, sequence) shape, or nil if that overflows Int. With a
    /// validated configuration and batch, each buffer's size fits; only the sum needs checking.
    static func scalarCount(_ config: ModelConfig, batch: Int, sequence: Int) -> Int? {
        var total = 0
        for buffer in ActivationBuffer.allCases {
            let size = ActivationBuffer.size(buffer, config, batch: batch, sequence: sequence)
            let (bytes, overflow) = size.copies.multipliedReportingOverflow(by: size.count)
            guard !overflow, case let (sum, false) = total.addingReportingOverflow(bytes) else { return nil }
            total = sum
        }
        return total
    }

    deinit {
        TensorMemory.deallocate(storage)
        tokens.deallocate()
        targets.deallocate()
    }

    /// Copy `index` of a buffer (the sublayer, layer or worker it belongs to).
    @inline(__always)
    subscript(_ buffer: ActivationBuffer, _ index: Int = 0) -> UnsafeMutablePointer<S> {
        guard let start = starts[buffer.rawValue] else {
            preconditionFailure("activation buffer \(buffer) does not exist in this variant")
        }
        precondition(index < copies[buffer.rawValue], "activation buffer \(buffer) has no copy \(index)")
        return start + index * counts[buffer.rawValue]
    }

    /// The model's next-byte distribution at each position after a forward pass, [B,T,V].
    var nextByteProbabilities: UnsafeMutablePointer<S> { self[.logits] }

    var bytes: Int { scalarCount * MemoryLayout<S>.stride + 2 * rows }

    /// Bytes of some of the buffers, all their copies.
    func bytes(of buffers: [ActivationBuffer]) -> Int {
        buffers.reduce(0) { $0 + copies[$1.rawValue] * counts[$1.rawValue] * MemoryLayout<S>.stride }
    }
}

/// The key of a pass's dropout masks: the rate, and (seed, step, the global index of the
/// workspace's first sequence) — so the masks are the same whatever the ranks, workers or resume.
struct DropoutKey: Sendable {
    var rate: Double, seed: UInt64, step: Int, firstSequence: Int
}
