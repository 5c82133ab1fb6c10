/// Softmax and cross-entropy fused: the logits are turned into probabilities in place.
enum CrossEntropy {
    /// Writes each row's loss (nats) into `losses` and returns their sum; `logits` hold softmax
    /// probabilities afterwards. The loss is log Σ exp(x) − x_target = max + log(sum) − x_target,
    /// never the log of a tiny p.
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ logits: UnsafeMutablePointer<S>, losses: UnsafeMutablePointer<S>, targets: UnsafePointer<UInt8>,
        rows: Int, classes: Int
    ) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let row = logits + r * classes
            let target = row[Int(targets[r])]
            let (m, s) = Softmax.row(row, count: classes)
            losses[r] = m + S.log(s) - target
            total += Double(losses[r])
        }
        return total
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
    /// Numerically stable softmax of one row, in place; returns (max, Σ exp(x − max)), so that
    /// log Σ exp(x) = max + log(sum).
    @inline(__always) @discardableResult
    static func row<S: TensorScalar>(_ x: UnsafeMutablePointer<S>, count: Int) -> (max: S, sum: S) {
        let m = S.maximum(x, count: count)
        let s = S.exponentiateAndSum(x, count: count, shift: m)
        let inverse = 1 / s
        for i in 0..<count { x[i] *= inverse }
        return (m, s)
    }

    /// Row softmax backward in place: d ← p ⊙ (d − Σ p·d).
    @inline(__always)
    static func rowBackward<S: TensorScalar>(_ d: UnsafeMutablePointer<S>, probabilities p: UnsafePointer<S>, count: Int) {
        let dot = S.innerProduct(p, d, count: count)
        for i in 0..<count { d[i] = p[i] * (d[i] - dot) }
    }
}
