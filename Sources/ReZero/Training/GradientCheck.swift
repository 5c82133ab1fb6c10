/// The whole model's analytic gradient against central finite differences, in Double.
public enum GradientCheck {
    public struct TensorResult: Sendable {
        public let name: String
        /// ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖) over the tensor; 0 when both are 0.
        public let relativeError: Double
        public let gradientNorm: Double
    }

    /// - Parameter alpha: nil keeps α at the variant's initial value; otherwise layer l gets
    ///   alpha + 0.1·l, so a check also covers α ≠ 0 (and distinct α per layer).
    public static func run(config: ModelConfig, batch: Int = 2, seed: UInt64 = 7, alpha: Double? = nil,
                           step: Double = 1e-4) throws -> [TensorResult] {
        let model = Model<Double>(config: config, seed: seed)
        // Small attention blocks, so the check covers full, partial and diagonal blocks.
        model.attentionBlock = 2
        // Move biases and norm parameters off their special init values to a generic point.
        for (index, spec) in model.layout.tensors.enumerated() where spec.role == .bias || spec.role == .norm {
            for i in 0..<spec.count {
                model.parameters[spec.offset + i] += 0.1 * CounterRandom.normal(
                    seed: seed, stream: 1 << 40 | UInt64(index), counter: UInt64(i))
            }
        }
        if let alpha {
            for (l, offset) in model.layout.alphaOffsets.enumerated() { model.parameters[offset] = alpha + 0.1 * Double(l) }
        }
        let ws = Workspace<Double>(config: config, batch: batch, sequence: config.seqLen)
        for i in 0..<ws.rows {
            ws.tokens[i] = UInt8(CounterRandom.below(256, seed: seed, stream: 9, counter: UInt64(i)))
            ws.targets[i] = UInt8(CounterRandom.below(256, seed: seed, stream: 10, counter: UInt64(i)))
        }
        let lossScale = 1 / Double(ws.rows)
        try model.forward(ws)
        model.zeroGradients()
        try model.backward(ws, lossScale: lossScale)
        let analytic = Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount))

        return try model.layout.tensors.map { spec in
            var difference = 0.0, analyticNorm = 0.0, numericNorm = 0.0
            for i in spec.range {
                let saved = model.parameters[i]
                func loss(at offset: Double) throws -> Double {
                    model.parameters[i] = saved + offset
                    return try model.forward(ws)
                }
                // Fourth-order central difference: truncation O(h⁴), so h can be large enough
                // to keep rounding error far below the tolerance.
                let near = try loss(at: step) - loss(at: -step)
                let far = try loss(at: 2 * step) - loss(at: -2 * step)
                model.parameters[i] = saved
                let numeric = (8 * near - far) / (12 * step)
                difference += (analytic[i] - numeric) * (analytic[i] - numeric)
                analyticNorm += analytic[i] * analytic[i]
                numericNorm += numeric * numeric
            }
            let scale = Swift.max(analyticNorm, numericNorm).squareRoot()
            return TensorResult(name: spec.name, relativeError: scale == 0 ? 0 : difference.squareRoot() / scale,
                                gradientNorm: analyticNorm.squareRoot())
        }
    }
}
