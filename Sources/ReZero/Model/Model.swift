/// A non-finite value found by the debug checks, named by tensor, layer and step.
public struct NonFiniteValue: Error, CustomStringConvertible {
    public let tensor: String, layer: Int?, step: Int, index: Int, value: Double
    public var description: String {
        let place = layer.map { "layer \($0), " } ?? ""
        return "non-finite value \(value) in \(tensor) (\(place)element \(index)) at step \(step)"
    }
}

/// Follows backward as it goes, for a gradient all-reduce that overlaps with it.
protocol BackwardObserver: AnyObject {
    /// The gradients in `range` will not change again in this backward pass: the head, then per
    /// layer from the last its feed-forward part and its attention part (α included), then the
    /// embeddings — together, the whole buffer.
    func gradientsReady(_ range: Range<Int>)
    /// Called between the products of backward, so that communication can make progress.
    func poll()
}

/// The byte-level Transformer language model: parameters and gradients in two flat buffers with
/// the layout of `ParameterLayout`, forward and backward written on BLAS. Each layer is two
/// residual sublayers wired as its variant's `Architecture` says.
public final class Model<S: TensorScalar> {
    public let config: ModelConfig
    let architecture: Architecture
    public let layout: ParameterLayout
    public let parameters: UnsafeMutablePointer<S>
    let gradients: UnsafeMutablePointer<S>
    public var parameterCount: Int { layout.count }

    /// When set, every activation and gradient is checked for NaN/Inf; the step is for messages.
    var debugStep: Int?
    /// Attention's query rows per block and key-range path, when not the tuned ones for the
    /// sequence length (speed knobs: the function is the same; the gradient checks use tiny blocks).
    var attentionBlock: Int?
    var attentionPath: Attention.Path?
    var backwardObserver: (any BackwardObserver)?

    public init(config: ModelConfig, seed: UInt64) {
        self.config = config
        architecture = config.architecture
        layout = ParameterLayout(config)
        parameters = TensorMemory.allocate(S.self, count: layout.count)
        gradients = TensorMemory.allocate(S.self, count: layout.count)
        initializeParameters(seed: seed)
    }

    deinit {
        TensorMemory.deallocate(parameters)
        TensorMemory.deallocate(gradients)
    }

    func zeroGradients() { gradients.update(repeating: 0, count: layout.count) }

    /// α of every layer (empty for variants without α).
    public var alphas: [Double] { layout.alphaOffsets.map { Double(parameters[$0]) } }

    /// The gate of layer l's sublayers: its α, or 1.
    @inline(__always)
    private func gate(_ l: Int) -> S { layout.layers[l].alpha.map { parameters[$0] } ?? 1 }

    /// The LayerNorm of sublayer s.
    @inline(__always)
    private func norm(_ s: Int) -> (weight: Int, bias: Int) { layout.layers[s / 2].norm(s % 2)! }

    // MARK: Forward

    /// Runs the model on `ws.tokens` and returns the mean cross-entropy (nats) against
    /// `ws.targets`. Afterwards `ws.nextByteProbabilities` holds the softmax of the logits.
    @discardableResult
    func forward(_ ws: Workspace<S>) throws(NonFiniteValue) -> Double {
        let n = ws.rows, d = config.dModel, v = ModelConfig.vocabulary
        Embedding.forward(ws[.stream, 0], tokens: ws.tokens, tokenTable: parameters + layout.tokenEmbedding,
                          positionTable: parameters + layout.positionEmbedding,
                          batch: ws.batch, sequence: ws.sequence, width: d)
        try check("embedding", nil, ws[.stream, 0], n * d)
        for s in 0..<2 * config.layers { try sublayerForward(s, ws) }
        var headInput = ws[.stream, 2 * config.layers]
        if let final = layout.finalNorm {
            layerNorm(ws[.finalNormOut], stats: ws[.finalNormStats], headInput, final, rows: n)
            headInput = ws[.finalNormOut]
        }
        Linear.forward(ws[.logits], headInput, weight: parameters + layout.headWeight,
                       bias: parameters + layout.headBias, rows: n, inputs: d, outputs: v)
        try check("logits", nil, ws[.logits], n * v)
        return CrossEntropy.forward(ws[.logits], losses: ws[.tokenLoss], targets: ws.targets, rows: n, classes: v) / Double(n)
    }

    /// stream[s + 1] from stream[s] through residual sublayer s.
    private func sublayerForward(_ s: Int, _ ws: Workspace<S>) throws(NonFiniteValue) {
        let l = s / 2, count = ws.rows * config.dModel
        let x = ws[.stream, s], y = ws[.stream, s + 1], branch = ws[.branch, s]
        var input = x
        if architecture.norm == .beforeSublayer {
            input = ws[.normOut, s]
            layerNorm(input, stats: ws[.normStats, s], x, norm(s), rows: ws.rows)
        }
        if s % 2 == 0 {
            try attentionForward(l, input: input, output: branch, ws)
        } else {
            try feedForwardForward(l, input: input, output: branch, ws)
        }
        let drop = dropout(ws, layer: l)
        if drop.isActive { drop.apply(branch, branch, site: branchSite(s), batch: ws.batch, sequence: ws.sequence, width: config.dModel) }
        if architecture.norm == .afterResidual {
            let sum = ws[.residualSum, s]
            Residual.forward(sum, x, branch: branch, alpha: gate(l), count: count)
            layerNorm(y, stats: ws[.residualSumStats, s], sum, norm(s), rows: ws.rows)
        } else {
            Residual.forward(y, x, branch: branch, alpha: gate(l), count: count)
        }
        try check(s % 2 == 0 ? "attention sublayer output" : "layer output", l, y, count)
    }

    private func attentionForward(_ l: Int, input: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>,
                                  _ ws: Workspace<S>) throws(NonFiniteValue) {
        let o = layout.layers[l], n = ws.rows, d = config.dModel
        Linear.forward(ws[.qkv, l], input, weight: parameters + o.qkvWeight, bias: parameters + o.qkvBias,
                       rows: n, inputs: d, outputs: 3 * d)
        try check("attn.qkv", l, ws[.qkv, l], n * 3 * d)
        Attention.forward(ws[.heads, l], logSumExp: ws[.logSumExp, l], qkv: ws[.qkv, l], scratch: ws[.attentionScratch],
                          shape: attentionShape(ws), dropout: dropout(ws, layer: l))
        Linear.forward(output, ws[.heads, l], weight: parameters + o.projWeight, bias: parameters + o.projBias,
                       rows: n, inputs: d, outputs: d)
        try check("attn.proj", l, output, n * d)
    }

    private func feedForwardForward(_ l: Int, input: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>,
                                    _ ws: Workspace<S>) throws(NonFiniteValue) {
        let o = layout.layers[l], n = ws.rows, d = config.dModel, f = config.ffWidth
        Linear.forward(ws[.hidden, l], input, weight: parameters + o.fc1Weight, bias: parameters + o.fc1Bias,
                       rows: n, inputs: d, outputs: f)
        Activation.forward(config.activation, ws[.activated, l], ws[.hidden, l], count: n * f)
        let drop = dropout(ws, layer: l)
        if drop.isActive {
            drop.apply(ws[.activated, l], ws[.activated, l], site: .activation, batch: ws.batch, sequence: ws.sequence, width: f)
        }
        Linear.forward(output, ws[.activated, l], weight: parameters + o.fc2Weight, bias: parameters + o.fc2Bias,
                       rows: n, inputs: f, outputs: d)
        try check("ffn.fc2", l, output, n * d)
    }

    /// Rows of `x` normalized into `y`; `stats` holds the row means, then the rows' 1/σ.
    private func layerNorm(_ y: UnsafeMutablePointer<S>, stats: UnsafeMutablePointer<S>, _ x: UnsafeMutablePointer<S>,
                           _ norm: (weight: Int, bias: Int), rows: Int) {
        LayerNorm.forward(y, mean: stats, rstd: stats + rows, x, weight: parameters + norm.weight,
                          bias: parameters + norm.bias, rows: rows, width: config.dModel)
    }

    // MARK: Backward

    /// Accumulates into `g` (by default the model's `gradients`) the gradient of `lossScale` ×
    /// (summed token losses) of the last forward pass: lossScale = 1/rows gives the gradient of
    /// the mean loss. Data-parallel workers each pass their own buffer.
    func backward(_ ws: Workspace<S>, lossScale: S, into g: UnsafeMutablePointer<S>? = nil) throws(NonFiniteValue) {
        let g = g ?? gradients
        let n = ws.rows, d = config.dModel, v = ModelConfig.vocabulary, last = ws[.stream, 2 * config.layers]
        CrossEntropy.backward(dLogits: ws[.dLogits], probabilities: ws[.logits], targets: ws.targets,
                              rows: n, classes: v, scale: lossScale)
        Linear.backward(dx: ws[.dStream], accumulateInput: false, dWeight: g + layout.headWeight,
                        dBias: g + layout.headBias, dy: ws[.dLogits],
                        x: layout.finalNorm == nil ? last : ws[.finalNormOut],
                        weight: parameters + layout.headWeight, rows: n, inputs: d, outputs: v)
        if let final = layout.finalNorm {
            layerNormBackward(dx: ws[.dStream], accumulate: false, dy: ws[.dStream], x: last,
                              stats: ws[.finalNormStats], final, rows: n, g)
        }
        try check("∂head input", nil, ws[.dStream], n * d)
        backwardObserver?.gradientsReady(layout.headRange)
        for s in stride(from: 2 * config.layers - 1, through: 0, by: -1) {
            try sublayerBackward(s, ws, g)
            backwardObserver?.gradientsReady(s % 2 == 1 ? layout.feedForwardRange(s / 2) : layout.attentionRange(s / 2))
        }
        Embedding.backward(dTokenTable: g + layout.tokenEmbedding,
                           dPositionTable: g + layout.positionEmbedding, dx: ws[.dStream],
                           tokens: ws.tokens, batch: ws.batch, sequence: ws.sequence, width: d)
        backwardObserver?.gradientsReady(layout.embeddingRange)
    }

    /// On entry ws[.dStream] = ∂L/∂stream[s + 1]; on exit ∂L/∂stream[s], updated in place. The
    /// residual path passes the gradient through unchanged, so the sublayer's input gradient is
    /// added straight into it (BLAS beta = 1).
    private func sublayerBackward(_ s: Int, _ ws: Workspace<S>, _ g: UnsafeMutablePointer<S>) throws(NonFiniteValue) {
        let l = s / 2, n = ws.rows, count = n * config.dModel, dStream = ws[.dStream]
        let pre = architecture.norm == .beforeSublayer
        if architecture.norm == .afterResidual {
            // In place: LayerNorm's backward takes each row's sums before it writes the row.
            layerNormBackward(dx: dStream, accumulate: false, dy: dStream, x: ws[.residualSum, s],
                              stats: ws[.residualSumStats, s], norm(s), rows: n, g)
        }
        var dBranch = dStream
        if let alpha = layout.layers[l].alpha {
            dBranch = ws[.dBranch]
            g[alpha] += Residual.backward(dBranch: dBranch, dy: dStream, branch: ws[.branch, s],
                                          alpha: parameters[alpha], count: count)
        }
        let drop = dropout(ws, layer: l)
        if drop.isActive {
            // The mask is on the branch alone: the stream's own gradient must stay as it is.
            if dBranch == dStream {
                dBranch = ws[.dBranch]
                dBranch.update(from: dStream, count: count)
            }
            drop.apply(dBranch, dBranch, site: branchSite(s), batch: ws.batch, sequence: ws.sequence, width: config.dModel)
        }
        let input = pre ? ws[.normOut, s] : ws[.stream, s]
        let dInput = pre ? ws[.dNormOut] : dStream
        if s % 2 == 0 {
            attentionBackward(l, input: input, dOut: dBranch, dInput: dInput, accumulate: !pre, ws, g)
        } else {
            feedForwardBackward(l, input: input, dOut: dBranch, dInput: dInput, accumulate: !pre, ws, g)
        }
        if pre {
            layerNormBackward(dx: dStream, accumulate: true, dy: dInput, x: ws[.stream, s],
                              stats: ws[.normStats, s], norm(s), rows: n, g)
        }
        try check("∂sublayer input", l, dStream, count)
    }

    /// dOut may alias dInput: it is fully consumed before the last product writes dInput.
    private func attentionBackward(_ l: Int, input: UnsafeMutablePointer<S>, dOut: UnsafeMutablePointer<S>,
                                   dInput: UnsafeMutablePointer<S>, accumulate: Bool, _ ws: Workspace<S>,
                                   _ g: UnsafeMutablePointer<S>) {
        let o = layout.layers[l], n = ws.rows, d = config.dModel
        Linear.backward(dx: ws[.dHeads], accumulateInput: false, dWeight: g + o.projWeight,
                        dBias: g + o.projBias, dy: dOut, x: ws[.heads, l],
                        weight: parameters + o.projWeight, rows: n, inputs: d, outputs: d)
        backwardObserver?.poll()
        Attention.backward(dqkv: ws[.dQKV], dOut: ws[.dHeads], out: ws[.heads, l], qkv: ws[.qkv, l],
                           logSumExp: ws[.logSumExp, l], scratch: ws[.attentionScratch], shape: attentionShape(ws),
                           dropout: dropout(ws, layer: l))
        backwardObserver?.poll()
        Linear.backward(dx: dInput, accumulateInput: accumulate, dWeight: g + o.qkvWeight,
                        dBias: g + o.qkvBias, dy: ws[.dQKV], x: input,
                        weight: parameters + o.qkvWeight, rows: n, inputs: d, outputs: 3 * d)
        // The key bias adds q·b to every score of a row, which softmax ignores: its gradient is
        // exactly zero. Its computed value is rounding noise that Adam would amplify into ±lr
        // steps differing between rank counts, so the exact value is stored instead.
        (g + o.qkvBias + d).update(repeating: 0, count: d)
    }

    /// dOut may alias dInput: it is fully consumed before the last product writes dInput.
    private func feedForwardBackward(_ l: Int, input: UnsafeMutablePointer<S>, dOut: UnsafeMutablePointer<S>,
                                     dInput: UnsafeMutablePointer<S>, accumulate: Bool, _ ws: Workspace<S>,
                                     _ g: UnsafeMutablePointer<S>) {
        let o = layout.layers[l], n = ws.rows, d = config.dModel, f = config.ffWidth
        Linear.backward(dx: ws[.dHidden], accumulateInput: false, dWeight: g + o.fc2Weight,
                        dBias: g + o.fc2Bias, dy: dOut, x: ws[.activated, l],
                        weight: parameters + o.fc2Weight, rows: n, inputs: f, outputs: d)
        let drop = dropout(ws, layer: l)
        if drop.isActive { drop.apply(ws[.dHidden], ws[.dHidden], site: .activation, batch: ws.batch, sequence: ws.sequence, width: f) }
        Activation.backward(config.activation, ws[.dHidden], ws[.hidden, l], count: n * f)
        backwardObserver?.poll()
        Linear.backward(dx: dInput, accumulateInput: accumulate, dWeight: g + o.fc1Weight,
                        dBias: g + o.fc1Bias, dy: ws[.dHidden], x: input,
                        weight: parameters + o.fc1Weight, rows: n, inputs: d, outputs: f)
    }

    private func layerNormBackward(dx: UnsafeMutablePointer<S>, accumulate: Bool, dy: UnsafeMutablePointer<S>,
                                   x: UnsafeMutablePointer<S>, stats: UnsafeMutablePointer<S>,
                                   _ norm: (weight: Int, bias: Int), rows: Int, _ g: UnsafeMutablePointer<S>) {
        LayerNorm.backward(dx: dx, accumulateInput: accumulate, dWeight: g + norm.weight,
                           dBias: g + norm.bias, dy: dy, x: x, mean: stats, rstd: stats + rows,
                           weight: parameters + norm.weight, rows: rows, width: config.dModel)
    }

    private func attentionShape(_ ws: Workspace<S>) -> Attention.Shape {
        var shape = Attention.tunedShape(batch: ws.batch, sequence: ws.sequence, width: config.dModel, heads: config.heads)
        if let attentionBlock { shape.block = attentionBlock }
        shape.path = attentionPath
        return shape
    }

    /// Layer l's dropout masks for the pass in `ws` (inactive when it has none).
    @inline(__always)
    private func dropout(_ ws: Workspace<S>, layer l: Int) -> Dropout {
        guard let key = ws.dropout else { return .none }
        return Dropout(rate: key.rate, seed: key.seed, step: key.step, layer: l, firstSequence: key.firstSequence)
    }

    private func branchSite(_ s: Int) -> Dropout.Site { s % 2 == 0 ? .attentionOutput : .feedForwardOutput }

    // MARK: Debug checks

    @inline(__always)
    private func check(_ tensor: String, _ layer: Int?, _ values: UnsafeMutablePointer<S>, _ count: Int) throws(NonFiniteValue) {
        guard let step = debugStep else { return }
        for i in 0..<count where !values[i].isFinite {
            throw NonFiniteValue(tensor: tensor, layer: layer, step: step, index: i, value: Double(values[i]))
        }
    }

    /// Debug mode: the first non-finite gradient, by parameter tensor name.
    func checkGradients() throws(NonFiniteValue) {
        guard let step = debugStep else { return }
        for spec in layout.tensors {
            for i in spec.range where !gradients[i].isFinite {
                throw NonFiniteValue(tensor: "∂" + spec.name, layer: nil, step: step,
                                     index: i - spec.offset, value: Double(gradients[i]))
            }
        }
    }
}
