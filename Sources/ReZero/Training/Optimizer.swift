import RealModule

public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
    case adamw, lamb
}

public struct OptimizerConfig: Codable, Equatable, Sendable {
    public var kind: OptimizerKind = .adamw
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var weightDecay = 0.01
    /// Multiplies the learning rate of the α scalars.
    public var alphaLRMultiplier = 1.0
    public init() {}
}

/// AdamW or LAMB over the flat buffers. Moments share the parameter layout, so the update is one
/// pass per tensor; decoupled weight decay applies to matrices only (`TensorSpec.Role.decays`).
public final class Optimizer {
    public let config: OptimizerConfig
    public let layout: ParameterLayout
    public let firstMoment: UnsafeMutablePointer<Float>
    public let secondMoment: UnsafeMutablePointer<Float>
    /// Number of updates taken so far (bias correction uses it).
    public var updates = 0

    public init(config: OptimizerConfig, layout: ParameterLayout) {
        self.config = config
        self.layout = layout
        firstMoment = .allocate(capacity: layout.count)
        firstMoment.initialize(repeating: 0, count: layout.count)
        secondMoment = .allocate(capacity: layout.count)
        secondMoment.initialize(repeating: 0, count: layout.count)
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    public func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, learningRate: Double) {
        updates += 1
        let b1 = Float(config.beta1), b2 = Float(config.beta2), eps = Float(config.epsilon)
        let correction1 = 1 / (1 - Float.pow(b1, updates)), correction2 = 1 / (1 - Float.pow(b2, updates))
        for spec in layout.tensors {
            let lr = Float(learningRate * (spec.role == .alpha ? config.alphaLRMultiplier : 1))
            let decay = spec.role.decays ? Float(config.weightDecay) : 0
            let w = parameters + spec.offset, g = gradients + spec.offset
            let m = firstMoment + spec.offset, v = secondMoment + spec.offset
            let n = spec.count
            for i in 0..<n {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
            }
            switch config.kind {
            case .adamw:
                for i in 0..<n {
                    let update = (m[i] * correction1) / ((v[i] * correction2).squareRoot() + eps)
                    w[i] -= lr * (update + decay * w[i])
                }
            case .lamb:
                // Layer-wise trust ratio ‖w‖ / ‖update‖ (1 where either norm is zero, e.g. α = 0).
                var weightNorm: Float = 0, updateNorm: Float = 0
                for i in 0..<n {
                    let u = (m[i] * correction1) / ((v[i] * correction2).squareRoot() + eps) + decay * w[i]
                    weightNorm += w[i] * w[i]
                    updateNorm += u * u
                }
                let trust = weightNorm > 0 && updateNorm > 0 ? (weightNorm / updateNorm).squareRoot() : 1
                for i in 0..<n {
                    let u = (m[i] * correction1) / ((v[i] * correction2).squareRoot() + eps) + decay * w[i]
                    w[i] -= lr * trust * u
                }
            }
        }
    }
}

/// Global L2 norm of a flat buffer, accumulated in Double.
public func globalNorm(_ values: UnsafePointer<Float>, count: Int) -> Double {
    var sum = 0.0
    for i in 0..<count { let v = Double(values[i]); sum += v * v }
    return sum.squareRoot()
}
