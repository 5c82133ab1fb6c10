/// The fourth-order central difference (8·[f(x+h) − f(x−h)] − [f(x+2h) − f(x−2h)]) / 12h: its
/// truncation error is O(h⁴), so h can be large enough to keep rounding far below the tolerance.
/// The one numerical derivative of the project: the whole-model check and the kernel tests use it.
enum NumericalGradient {
    /// ∂f/∂x[index], restoring x[index] afterwards.
    static func centralDifference<E: Error>(
        of x: UnsafeMutablePointer<Double>, at index: Int, step h: Double = 1e-4, _ f: () throws(E) -> Double
    ) throws(E) -> Double {
        let saved = x[index]
        defer { x[index] = saved }
        func at(_ offset: Double) throws(E) -> Double {
            x[index] = saved + offset
            return try f()
        }
        let near = try at(h) - at(-h)
        let far = try at(2 * h) - at(-2 * h)
        return (8 * near - far) / (12 * h)
    }

    /// ‖a − b‖ / max(‖a‖, ‖b‖); 0 when both vanish.
    static func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        var difference = 0.0, normA = 0.0, normB = 0.0
        for (x, y) in zip(a, b) {
            difference += (x - y) * (x - y)
            normA += x * x
            normB += y * y
        }
        let scale = Swift.max(normA, normB).squareRoot()
        return scale == 0 ? 0 : difference.squareRoot() / scale
    }
}

/// The whole model's analytic gradient against central finite differences, in Double.
public enum GradientCheck {
    public struct TensorResult: Sendable {
        public let name: String
        /// ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖) over the tensor; 0 when both are 0.
        public let relativeError: Double
        public let gradientNorm: Double
    }

    /// - Parameters:
    ///   - alpha: nil keeps α at the variant's initial value; otherwise layer l gets alpha + 0.1·l,
    ///     so a check also covers α ≠ 0 (and distinct α per layer).
    ///   - dropout: with a rate above 0, every pass uses the same masks (one step's), so the finite
    ///     differences see the function the analytic gradient is of.
    public static func run(config: ModelConfig, batch: Int = 2, seed: UInt64 = 7, alpha: Double? = nil,
                           dropout: Double = 0) throws -> [TensorResult] {
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
        if dropout > 0 { ws.dropout = DropoutKey(rate: dropout, seed: seed, step: 1, firstSequence: 5) }
        for i in 0..<ws.rows {
            ws.tokens[i] = UInt8(CounterRandom.below(256, seed: seed, stream: 9, counter: UInt64(i)))
            ws.targets[i] = UInt8(CounterRandom.below(256, seed: seed, stream: 10, counter: UInt64(i)))
        }
        try model.forward(ws)
        model.zeroGradients()
        try model.backward(ws, lossScale: 1 / Double(ws.rows))
        return try model.layout.tensors.map { spec in
            let analytic = Array(UnsafeBufferPointer(start: model.gradients + spec.offset, count: spec.count))
            let numeric = try spec.range.map { i in
                try NumericalGradient.centralDifference(of: model.parameters, at: i) { () throws(NonFiniteValue) in
                    try model.forward(ws)
                }
            }
            return TensorResult(name: spec.name, relativeError: NumericalGradient.relativeError(analytic, numeric),
                                gradientNorm: analytic.reduce(0) { $0 + $1 * $1 }.squareRoot())
        }
    }
}
