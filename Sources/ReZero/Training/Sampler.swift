import RealModule

/// Autoregressive byte generation: each new byte is drawn from the model's distribution given the
/// last seq-len bytes, sharpened or flattened by the temperature.
public enum Sampler {
    public static func generate(model: Model<Float>, prompt: [UInt8], count: Int, temperature: Double,
                                seed: UInt64) throws -> [UInt8] {
        var text = prompt.isEmpty ? [UInt8(ascii: "\n")] : prompt
        var workspaces: [Int: Workspace<Float>] = [:]
        let v = ModelConfig.vocabulary
        var probabilities = [Double](repeating: 0, count: v)
        for i in 0..<count {
            let context = text.suffix(model.config.seqLen)
            let ws = workspaces[context.count] ?? Workspace<Float>(config: model.config, batch: 1, sequence: context.count)
            workspaces[context.count] = ws
            for (j, byte) in context.enumerated() { ws.tokens[j] = byte }
            try model.forward(ws)
            let last = ws.nextByteProbabilities + (context.count - 1) * v
            if temperature <= 0 {
                text.append(UInt8((0..<v).max { last[$0] < last[$1] }!))
                continue
            }
            // p^(1/τ), renormalized (the softmax of logits/τ), computed as exp((log p − log p_max)/τ):
            // p^(1/τ) itself underflows to 0 for every byte at low temperatures.
            let top = Double.log(Double((0..<v).map { last[$0] }.max()!))
            var total = 0.0
            for c in 0..<v {
                probabilities[c] = Double.exp((Double.log(Double(last[c])) - top) / temperature)
                total += probabilities[c]
            }
            var u = CounterRandom.uniform(seed: seed, stream: CounterRandom.Stream.sampling.rawValue,
                                          counter: UInt64(i)) * total
            var choice = v - 1
            for c in 0..<v {
                u -= probabilities[c]
                if u < 0 { choice = c; break }
            }
            text.append(UInt8(choice))
        }
        return Array(text.suffix(count))
    }
}
