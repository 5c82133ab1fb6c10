/// A non-finite value found by the debug checks, named by tensor, layer and step.
public struct NonFiniteValue: Error, CustomStringConvertible {
    public let tensor: String, layer: Int?, step: Int, index: Int, value: Double
    public var description: String {
        let place = layer.map { "layer \($0), " } ?? ""
        return "non-finite value \(value) in \(tensor) (\(place)element \(index)) at step \(step)"
    }
}

/// The byte-level ReZero Transformer language model: parameters and gradients in two flat buffers
/// with the layout of `ParameterLayout`, forward and backward written on BLAS.
public final class Model<S: TensorScalar> {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let parameters: UnsafeMutablePointer<S>
    public let gradients: UnsafeMutablePointer<S>
    public var parameterCount: Int { layout.count }

    /// When set, every activation and gradient is checked for NaN/Inf; the step is for messages.
    public var debugStep: Int?
    /// Query rows per block of the causal attention products (a speed knob; the function is the same).
    public var attentionBlock = 64
    /// Called during backward as each part's gradients become final — the head, then for each
    /// layer from the last its feed-forward part and its attention part, then the embeddings
    /// (together, the whole buffer) — and with an empty range between the products inside a
    /// layer; the trainer starts and drives the all-reduce here.
    public var gradientsReady: ((Range<Int>) -> Void)?

    public init(config: ModelConfig, seed: UInt64) {
        self.config = config
        layout = ParameterLayout(config)
        parameters = .allocate(capacity: layout.count)
        gradients = .allocate(capacity: layout.count)
        gradients.initialize(repeating: 0, count: layout.count)
        parameters.initialize(repeating: 0, count: layout.count)
        initializeParameters(seed: seed)
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
    }

    /// Xavier-uniform matrices, N(0, 1) embeddings (PyTorch's nn.Embedding default: without
    /// LayerNorm, ReZero's residual stream keeps the scale of its input), zero biases, unit LayerNorm gains and α
    /// at the variant's initial value. Tensor i draws from its own counter stream, so a tensor's
    /// values do not depend on the tensors laid out before it.
    public func initializeParameters(seed: UInt64) {
        for (index, spec) in layout.tensors.enumerated() {
            let stream = CounterRandom.Stream.initialization.rawValue << 32 | UInt64(index)
            let values = parameters + spec.offset
            switch spec.role {
            case .matrix:
                let bound = (6.0 / Double(spec.shape[0] + spec.shape[1])).squareRoot()
                for i in 0..<spec.count {
                    let u = CounterRandom.uniform(seed: seed, stream: stream, counter: UInt64(i))
                    values[i] = S((2 * u - 1) * bound)
                }
            case .embedding:
                for i in 0..<spec.count {
                    values[i] = S(CounterRandom.normal(seed: seed, stream: stream, counter: UInt64(i)))
                }
            case .bias:
                values.update(repeating: 0, count: spec.count)
            case .norm:
                values.update(repeating: spec.name.hasSuffix(".weight") ? 1 : 0, count: spec.count)
            case .alpha:
                values[0] = S(config.variant.alphaInit)
            }
        }
    }

    public func zeroGradients() { gradients.update(repeating: 0, count: layout.count) }

    public func alpha(layer: Int) -> S {
        layout.layers[layer].alpha.map { parameters[$0] } ?? 1
    }

    // MARK: Forward

    /// Runs the model on `workspace.tokens` and returns the mean cross-entropy (nats) against
    /// `workspace.targets`. Afterwards `workspace.logits` holds the softmax probabilities.
    @discardableResult
    public func forward(_ ws: Workspace<S>) throws(NonFiniteValue) -> Double {
        let n = ws.rows, d = config.dModel
        Embedding.forward(ws.residual[0], tokens: ws.tokens, tokenTable: parameters + layout.tokenEmbedding,
                          positionTable: parameters + layout.positionEmbedding,
                          batch: ws.batch, sequence: ws.sequence, width: d)
        try check("embedding", nil, ws.residual[0], n * d)
        for l in 0..<config.layers {
            try layerForward(l, ws)
        }
        let headInput = try finalNormForward(ws)
        Linear.forward(ws.logits, headInput, weight: parameters + layout.headWeight,
                       bias: parameters + layout.headBias, rows: n, inputs: d,
                       outputs: ModelConfig.vocabulary)
        try check("logits", nil, ws.logits, n * ModelConfig.vocabulary)
        let total = CrossEntropy.forward(ws.logits, targets: ws.targets, rows: n,
                                         classes: ModelConfig.vocabulary)
        return total / Double(n)
    }

    private func layerForward(_ l: Int, _ ws: Workspace<S>) throws(NonFiniteValue) {
        let x = ws.residual[l], y = ws.residual[l + 1], a = ws.layers[l], o = layout.layers[l]
        let count = ws.rows * config.dModel
        switch config.variant {
        case .rezero, .rezeroAlpha1:
            let alpha = parameters[o.alpha!]
            try attentionForward(l, input: x, ws)
            Residual.forward(a.mid, x, branch: a.attnOut, alpha: alpha, count: count)
            try ffnForward(l, input: a.mid, ws)
            Residual.forward(y, a.mid, branch: a.ffnOut, alpha: alpha, count: count)
        case .prenorm:
            normForward(a.norm1, a.mean1, a.rstd1, x, o.norm1Weight!, o.norm1Bias!, ws.rows)
            try attentionForward(l, input: a.norm1, ws)
            Residual.forward(a.mid, x, branch: a.attnOut, alpha: 1, count: count)
            normForward(a.norm2, a.mean2, a.rstd2, a.mid, o.norm2Weight!, o.norm2Bias!, ws.rows)
            try ffnForward(l, input: a.norm2, ws)
            Residual.forward(y, a.mid, branch: a.ffnOut, alpha: 1, count: count)
        case .postnorm:
            try attentionForward(l, input: x, ws)
            Residual.forward(a.sum1, x, branch: a.attnOut, alpha: 1, count: count)
            normForward(a.mid, a.mean1, a.rstd1, a.sum1, o.norm1Weight!, o.norm1Bias!, ws.rows)
            try ffnForward(l, input: a.mid, ws)
            Residual.forward(a.sum2, a.mid, branch: a.ffnOut, alpha: 1, count: count)
            normForward(y, a.mean2, a.rstd2, a.sum2, o.norm2Weight!, o.norm2Bias!, ws.rows)
        }
        try check("layer output", l, y, count)
    }

    private func attentionForward(_ l: Int, input: UnsafeMutablePointer<S>, _ ws: Workspace<S>) throws(NonFiniteValue) {
        let a = ws.layers[l], o = layout.layers[l], n = ws.rows, d = config.dModel
        Linear.forward(a.qkv, input, weight: parameters + o.qkvWeight, bias: parameters + o.qkvBias,
                       rows: n, inputs: d, outputs: 3 * d)
        try check("attn.qkv", l, a.qkv, n * 3 * d)
        Attention.forward(a.heads, probabilities: a.probabilities, qkv: a.qkv, shape: attentionShape(ws))
        Linear.forward(a.attnOut, a.heads, weight: parameters + o.projWeight, bias: parameters + o.projBias,
                       rows: n, inputs: d, outputs: d)
        try check("attn.proj", l, a.attnOut, n * d)
    }

    private func ffnForward(_ l: Int, input: UnsafeMutablePointer<S>, _ ws: Workspace<S>) throws(NonFiniteValue) {
        let a = ws.layers[l], o = layout.layers[l], n = ws.rows, d = config.dModel, f = config.ffWidth
        Linear.forward(a.fc1Pre, input, weight: parameters + o.fc1Weight, bias: parameters + o.fc1Bias,
                       rows: n, inputs: d, outputs: f)
        Activation.forward(config.activation, a.fc1Act, a.fc1Pre, count: n * f)
        Linear.forward(a.ffnOut, a.fc1Act, weight: parameters + o.fc2Weight, bias: parameters + o.fc2Bias,
                       rows: n, inputs: f, outputs: d)
        try check("ffn.fc2", l, a.ffnOut, n * d)
    }

    private func normForward(_ y: UnsafeMutablePointer<S>, _ mean: UnsafeMutablePointer<S>,
                             _ rstd: UnsafeMutablePointer<S>, _ x: UnsafeMutablePointer<S>,
                             _ weight: Int, _ bias: Int, _ rows: Int) {
        LayerNorm.forward(y, mean: mean, rstd: rstd, x, weight: parameters + weight, bias: parameters + bias,
                          rows: rows, width: config.dModel)
    }

    private func finalNormForward(_ ws: Workspace<S>) throws(NonFiniteValue) -> UnsafeMutablePointer<S> {
        let last = ws.residual[config.layers]
        guard let w = layout.finalNormWeight, let b = layout.finalNormBias else { return last }
        normForward(ws.finalNorm, ws.finalMean, ws.finalRstd, last, w, b, ws.rows)
        return ws.finalNorm
    }

    // MARK: Backward

    /// Accumulates into `gradients` the gradient of `lossScale` × (summed token losses) of the
    /// last forward pass: lossScale = 1/rows gives the gradient of the mean loss.
    public func backward(_ ws: Workspace<S>, lossScale: S) throws(NonFiniteValue) {
        let n = ws.rows, d = config.dModel, v = ModelConfig.vocabulary
        CrossEntropy.backward(dLogits: ws.dLogits, probabilities: ws.logits, targets: ws.targets,
                              rows: n, classes: v, scale: lossScale)
        let last = ws.residual[config.layers]
        let headInput = layout.finalNormWeight == nil ? last : ws.finalNorm
        let dHeadInput = layout.finalNormWeight == nil ? ws.dResidual : ws.dBranch
        Linear.backward(dx: dHeadInput, accumulateInput: false, dWeight: gradients + layout.headWeight,
                        dBias: gradients + layout.headBias, dy: ws.dLogits, x: headInput,
                        weight: parameters + layout.headWeight, rows: n, inputs: d, outputs: v)
        if let w = layout.finalNormWeight, let b = layout.finalNormBias {
            LayerNorm.backward(dx: ws.dResidual, accumulateInput: false, dWeight: gradients + w,
                               dBias: gradients + b, dy: ws.dBranch, x: last, mean: ws.finalMean,
                               rstd: ws.finalRstd, weight: parameters + w, rows: n, width: d)
        }
        try check("∂head input", nil, ws.dResidual, n * d)
        gradientsReady?(layout.headRange)
        for l in stride(from: config.layers - 1, through: 0, by: -1) {
            try layerBackward(l, ws)
            gradientsReady?(layout.attentionRange(l))
        }
        Embedding.backward(dTokenTable: gradients + layout.tokenEmbedding,
                           dPositionTable: gradients + layout.positionEmbedding, dx: ws.dResidual,
                           tokens: ws.tokens, batch: ws.batch, sequence: ws.sequence, width: d)
        gradientsReady?(layout.embeddingRange)
    }

    /// On entry ws.dResidual = ∂L/∂(layer output); on exit ∂L/∂(layer input), updated in place.
    /// The sublayers' input gradients are added straight into it (BLAS beta = 1), because every
    /// variant's residual path passes the gradient through unchanged.
    private func layerBackward(_ l: Int, _ ws: Workspace<S>) throws(NonFiniteValue) {
        let x = ws.residual[l], a = ws.layers[l], o = layout.layers[l], n = ws.rows
        let count = n * config.dModel
        let dr = ws.dResidual
        switch config.variant {
        case .rezero, .rezeroAlpha1:
            let alpha = parameters[o.alpha!]
            var dAlpha = Residual.backward(dBranch: ws.dBranch, dy: dr, branch: a.ffnOut, alpha: alpha, count: count)
            ffnBackward(l, input: a.mid, dOut: ws.dBranch, dInput: dr, accumulate: true, ws)
            gradientsReady?(layout.feedForwardRange(l))
            dAlpha += Residual.backward(dBranch: ws.dBranch, dy: dr, branch: a.attnOut, alpha: alpha, count: count)
            attentionBackward(l, input: x, dOut: ws.dBranch, dInput: dr, accumulate: true, ws)
            gradients[o.alpha!] += dAlpha
        case .prenorm:
            ffnBackward(l, input: a.norm2, dOut: dr, dInput: ws.dBranch, accumulate: false, ws)
            normBackward(dx: dr, accumulate: true, dy: ws.dBranch, x: a.mid, a.mean2, a.rstd2,
                         o.norm2Weight!, o.norm2Bias!, n)
            gradientsReady?(layout.feedForwardRange(l))
            attentionBackward(l, input: a.norm1, dOut: dr, dInput: ws.dBranch, accumulate: false, ws)
            normBackward(dx: dr, accumulate: true, dy: ws.dBranch, x: x, a.mean1, a.rstd1,
                         o.norm1Weight!, o.norm1Bias!, n)
        case .postnorm:
            // LayerNorm's backward is safe in place: each row's sums are taken before it is written.
            normBackward(dx: dr, accumulate: false, dy: dr, x: a.sum2, a.mean2, a.rstd2,
                         o.norm2Weight!, o.norm2Bias!, n)
            ffnBackward(l, input: a.mid, dOut: dr, dInput: dr, accumulate: true, ws)
            gradientsReady?(layout.feedForwardRange(l))
            normBackward(dx: dr, accumulate: false, dy: dr, x: a.sum1, a.mean1, a.rstd1,
                         o.norm1Weight!, o.norm1Bias!, n)
            attentionBackward(l, input: x, dOut: dr, dInput: dr, accumulate: true, ws)
        }
        try check("∂layer input", l, dr, count)
    }

    /// dOut may alias dInput: it is fully consumed before the last product writes dInput.
    private func attentionBackward(_ l: Int, input: UnsafeMutablePointer<S>, dOut: UnsafeMutablePointer<S>,
                                   dInput: UnsafeMutablePointer<S>, accumulate: Bool, _ ws: Workspace<S>) {
        let a = ws.layers[l], o = layout.layers[l], n = ws.rows, d = config.dModel
        Linear.backward(dx: ws.dHeads, accumulateInput: false, dWeight: gradients + o.projWeight,
                        dBias: gradients + o.projBias, dy: dOut, x: a.heads,
                        weight: parameters + o.projWeight, rows: n, inputs: d, outputs: d)
        gradientsReady?(0..<0)
        Attention.backward(dqkv: ws.dQKV, dOut: ws.dHeads, qkv: a.qkv, probabilities: a.probabilities,
                           scratch: ws.dScores, shape: attentionShape(ws))
        gradientsReady?(0..<0)
        Linear.backward(dx: dInput, accumulateInput: accumulate, dWeight: gradients + o.qkvWeight,
                        dBias: gradients + o.qkvBias, dy: ws.dQKV, x: input,
                        weight: parameters + o.qkvWeight, rows: n, inputs: d, outputs: 3 * d)
        // The key bias adds q·b to every score of a row, which softmax ignores: its gradient is
        // exactly zero. Its computed value is rounding noise that Adam would amplify into ±lr
        // steps differing between rank counts, so the exact value is stored instead.
        (gradients + o.qkvBias + d).update(repeating: 0, count: d)
    }

    /// dOut may alias dInput: it is fully consumed before the last product writes dInput.
    private func ffnBackward(_ l: Int, input: UnsafeMutablePointer<S>, dOut: UnsafeMutablePointer<S>,
                             dInput: UnsafeMutablePointer<S>, accumulate: Bool, _ ws: Workspace<S>) {
        let a = ws.layers[l], o = layout.layers[l], n = ws.rows, d = config.dModel, f = config.ffWidth
        Linear.backward(dx: ws.dFC, accumulateInput: false, dWeight: gradients + o.fc2Weight,
                        dBias: gradients + o.fc2Bias, dy: dOut, x: a.fc1Act,
                        weight: parameters + o.fc2Weight, rows: n, inputs: f, outputs: d)
        Activation.backward(config.activation, ws.dFC, a.fc1Pre, count: n * f)
        gradientsReady?(0..<0)
        Linear.backward(dx: dInput, accumulateInput: accumulate, dWeight: gradients + o.fc1Weight,
                        dBias: gradients + o.fc1Bias, dy: ws.dFC, x: input,
                        weight: parameters + o.fc1Weight, rows: n, inputs: d, outputs: f)
    }

    private func normBackward(dx: UnsafeMutablePointer<S>, accumulate: Bool, dy: UnsafeMutablePointer<S>,
                              x: UnsafeMutablePointer<S>, _ mean: UnsafeMutablePointer<S>,
                              _ rstd: UnsafeMutablePointer<S>, _ weight: Int, _ bias: Int, _ rows: Int) {
        LayerNorm.backward(dx: dx, accumulateInput: accumulate, dWeight: gradients + weight,
                           dBias: gradients + bias, dy: dy, x: x, mean: mean, rstd: rstd,
                           weight: parameters + weight, rows: rows, width: config.dModel)
    }

    private func attentionShape(_ ws: Workspace<S>) -> Attention.Shape {
        Attention.Shape(batch: ws.batch, sequence: ws.sequence, width: config.dModel, heads: config.heads,
                        block: attentionBlock, workers: ws.attentionWorkers)
    }

    // MARK: Debug checks

    @inline(__always)
    private func check(_ tensor: String, _ layer: Int?, _ values: UnsafeMutablePointer<S>, _ count: Int) throws(NonFiniteValue) {
        guard let step = debugStep else { return }
        for i in 0..<count where !values[i].isFinite {
            throw NonFiniteValue(tensor: tensor, layer: layer, step: step, index: i, value: Double(values[i]))
        }
    }

    /// Debug mode: the first non-finite gradient, by parameter tensor name.
    public func checkGradients() throws(NonFiniteValue) {
        guard let step = debugStep else { return }
        for spec in layout.tensors {
            for i in spec.range where !gradients[i].isFinite {
                throw NonFiniteValue(tensor: "∂" + spec.name, layer: nil, step: step,
                                     index: i - spec.offset, value: Double(gradients[i]))
            }
        }
    }
}
