/// Softmax and mean cross-entropy fused: logits are turned into probabilities in place.
enum CrossEntropy {
    /// Returns the summed loss (nats) over `rows`; `logits` hold softmax probabilities afterwards.
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ logits: UnsafeMutablePointer<S>, targets: UnsafePointer<UInt8>, rows: Int, classes: Int
    ) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let row = logits + r * classes
            Softmax.row(row, count: classes)
            total += loss(row, target: targets[r])
        }
        return total
    }

    /// −log p(target) in nats, from one row of probabilities.
    @inline(__always)
    static func loss<S: TensorScalar>(_ probabilities: UnsafePointer<S>, target: UInt8) -> Double {
        -Double(S.log(probabilities[Int(target)]))
    }

    /// dLogits = scale · (p − onehot(target)).
    @inline(__always)
    static func backward<S: TensorScalar>(
        dLogits: UnsafeMutablePointer<S>, probabilities: UnsafePointer<S>,
        targets: UnsafePointer<UInt8>, rows: Int, classes: Int, scale: S
    ) {
        for r in 0..<rows {
            let p = probabilities + r * classes, d = dLogits + r * classes
            for c in 0..<classes { d[c] = scale * p[c] }
            d[Int(targets[r])] -= scale
        }
    }
}

enum Softmax {
    /// Numerically stable softmax of one row, in place.
    @inline(__always)
    static func row<S: TensorScalar>(_ x: UnsafeMutablePointer<S>, count: Int) {
        var m = x[0]
        for i in 1..<count where x[i] > m { m = x[i] }
        S.exponentiate(x, count: count, shift: m)
        let inv = 1 / Reduction.sum(count, x)
        for i in 0..<count { x[i] *= inv }
    }

    /// Row softmax backward in place: d ← p ⊙ (d − Σ p·d).
    @inline(__always)
    static func rowBackward<S: TensorScalar>(
        _ d: UnsafeMutablePointer<S>, probabilities p: UnsafePointer<S>, count: Int
    ) {
        let dot = Reduction.dot(count, p, d)
        for i in 0..<count { d[i] = p[i] * (d[i] - dot) }
    }
}
