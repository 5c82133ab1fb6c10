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
    public var alphaLearningRateMultiplier = 1.0
    public init() {}
}

/// AdamW or LAMB over the flat buffers. Moments share the parameter layout, so the update is one
/// pass per tensor; decoupled weight decay applies to matrices only (`TensorSpec.Role.decays`).
/// LAMB rescales the AdamW update of matrices and embeddings by their trust ratio and gives α,
/// biases and LayerNorm parameters the AdamW update itself (`TensorSpec.Role.layerAdapted`).
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
            let lr = Float(learningRate * (spec.role == .alpha ? config.alphaLearningRateMultiplier : 1))
            let decay = spec.role.decays ? Float(config.weightDecay) : 0
            let w = parameters + spec.offset, g = gradients + spec.offset
            let m = firstMoment + spec.offset, v = secondMoment + spec.offset
            let n = spec.count
            if config.kind == .lamb && spec.role.layerAdapted {
                lamb(w, g, m, v, count: n, b1: b1, b2: b2, correction1: correction1, correction2: correction2,
                     epsilon: eps, learningRate: lr, decay: decay)
            } else {
                adamW(w, g, m, v, count: n, b1: b1, b2: b2, correction1: correction1, correction2: correction2,
                      epsilon: eps, learningRate: lr, decay: decay)
            }
        }
    }
}

/// LAMB's update of one tensor: the AdamW update u rescaled by the trust ratio ‖w‖ / ‖u‖ (1 where
/// either norm is zero).
private func lamb(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                  _ v: UnsafeMutablePointer<Float>, count: Int, b1: Float, b2: Float, correction1: Float,
                  correction2: Float, epsilon: Float, learningRate: Float, decay: Float) {
    for i in 0..<count {
        m[i] = b1 * m[i] + (1 - b1) * g[i]
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
    }
    func update(_ i: Int) -> Float { (m[i] * correction1) / ((v[i] * correction2).squareRoot() + epsilon) + decay * w[i] }
    var weightNorm: Float = 0, updateNorm: Float = 0
    for i in 0..<count {
        let u = update(i)
        weightNorm += w[i] * w[i]
        updateNorm += u * u
    }
    let trust = weightNorm > 0 && updateNorm > 0 ? (weightNorm / updateNorm).squareRoot() : 1
    for i in 0..<count { w[i] -= learningRate * trust * update(i) }
}

/// The AdamW update in one pass over w, g, m, v (the optimizer is memory-bound). Explicit
/// vectors: with four buffers the compiler cannot prove apart, it would keep the loop scalar.
@inline(__always)
private func adamW(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                   _ v: UnsafeMutablePointer<Float>, count: Int, b1: Float, b2: Float, correction1: Float,
                   correction2: Float, epsilon: Float, learningRate: Float, decay: Float) {
    typealias Lanes = SIMD4<Float>
    func step(_ g: Lanes, _ w: inout Lanes, _ m: inout Lanes, _ v: inout Lanes) {
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= learningRate * ((m * correction1) / ((v * correction2).squareRoot() + epsilon) + decay * w)
    }
    var i = 0
    while i + 4 <= count {
        var wi = UnsafeRawPointer(w + i).loadUnaligned(as: Lanes.self)
        var mi = UnsafeRawPointer(m + i).loadUnaligned(as: Lanes.self)
        var vi = UnsafeRawPointer(v + i).loadUnaligned(as: Lanes.self)
        step(UnsafeRawPointer(g + i).loadUnaligned(as: Lanes.self), &wi, &mi, &vi)
        UnsafeMutableRawPointer(w + i).storeBytes(of: wi, as: Lanes.self)
        UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: Lanes.self)
        UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: Lanes.self)
        i += 4
    }
    // The last count % 4 elements go through the same step in zero-padded lanes.
    let tail = count - i
    guard tail > 0 else { return }
    var gi = Lanes(), wi = Lanes(), mi = Lanes(), vi = Lanes()
    for k in 0..<tail { gi[k] = g[i + k]; wi[k] = w[i + k]; mi[k] = m[i + k]; vi[k] = v[i + k] }
    step(gi, &wi, &mi, &vi)
    for k in 0..<tail { w[i + k] = wi[k]; m[i + k] = mi[k]; v[i + k] = vi[k] }
}

/// Global L2 norm of a flat buffer, accumulated in Double.
public func globalNorm(_ values: UnsafePointer<Float>, count: Int) -> Double {
    var sum = 0.0
    for i in 0..<count { let v = Double(values[i]); sum += v * v }
    return sum.squareRoot()
}
