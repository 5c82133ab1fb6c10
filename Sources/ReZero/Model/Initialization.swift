/// How a model's parameters start.
extension Model {
    /// Xavier-uniform matrices (the residual outputs scaled as the variant says), N(0, 1)
    /// embeddings (PyTorch's nn.Embedding default: without LayerNorm, ReZero's residual stream
    /// keeps the scale of its input), zero biases, unit LayerNorm gains and α at the variant's
    /// initial value. Tensor i draws from its own counter stream, so a tensor's values do not
    /// depend on the tensors laid out before it.
    func initializeParameters(seed: UInt64) {
        let residualOutputs = Set(layout.residualOutputWeights)
        let residualOutputScale = architecture.residualOutputInit.scale(layers: config.layers)
        for (index, spec) in layout.tensors.enumerated() {
            let stream = CounterRandom.Stream.initialization.rawValue << 32 | UInt64(index)
            let values = parameters + spec.offset
            switch spec.role {
            case .matrix:
                let scale = residualOutputs.contains(spec.offset) ? residualOutputScale : 1
                let bound = scale * (6.0 / Double(spec.shape[0] + spec.shape[1])).squareRoot()
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
                if case .alpha(let initial) = architecture.gate { values[0] = S(initial) }
            }
        }
    }
}
