import RealModule

/// The row kernels' Double path, for the gradient checks: scalar, libm, strict left-to-right sums.
extension Double: RowKernels {
    public static func sum(_ x: UnsafePointer<Double>, count: Int) -> Double {
        var s = 0.0
        for i in 0..<count { s += x[i] }
        return s
    }

    public static func innerProduct(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, count: Int) -> Double {
        var s = 0.0
        for i in 0..<count { s += x[i] * y[i] }
        return s
    }

    public static func maximum(_ x: UnsafePointer<Double>, count: Int) -> Double {
        var m = x[0]
        for i in 1..<Swift.max(count, 1) where x[i] > m { m = x[i] }
        return m
    }

    public static func exponentiate(_ x: UnsafeMutablePointer<Double>, count: Int, shift: Double) {
        for i in 0..<count { x[i] = Double.exp(x[i] - shift) }
    }

    public static func exponentiateAndSum(_ x: UnsafeMutablePointer<Double>, count: Int, shift: Double) -> Double {
        var s = 0.0
        for i in 0..<count {
            x[i] = Double.exp(x[i] - shift)
            s += x[i]
        }
        return s
    }

    public static func softmaxGradientRow(
        _ p: UnsafeMutablePointer<Double>, _ g: UnsafeMutablePointer<Double>, count: Int, logSumExp: Double, rowDot: Double
    ) {
        for j in 0..<count {
            let e = Double.exp(p[j] - logSumExp)
            p[j] = e
            g[j] = e * (g[j] - rowDot)
        }
    }

    public static func geluForward(_ y: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>, count: Int) {
        let c0 = geluSqrt2OverPi, c1 = geluCubic
        for i in 0..<count {
            let v = x[i]
            y[i] = 0.5 * v * (1 + Double.tanh(c0 * (v + c1 * v * v * v)))
        }
    }

    public static func geluBackward(_ d: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>, count: Int) {
        let c0 = geluSqrt2OverPi, c1 = geluCubic
        for i in 0..<count {
            let v = x[i]
            let t = Double.tanh(c0 * (v + c1 * v * v * v))
            let dInner = c0 * (1 + 3 * c1 * v * v)
            d[i] *= 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner
        }
    }

    public static func layerNormForwardRow(
        _ y: UnsafeMutablePointer<Double>, _ x: UnsafePointer<Double>,
        weight: UnsafePointer<Double>, bias: UnsafePointer<Double>, width n: Int, epsilon: Double
    ) -> (mean: Double, rstd: Double) {
        let mu = sum(x, count: n) / Double(n)
        var sq = 0.0
        for i in 0..<n { let c = x[i] - mu; sq += c * c }
        let inv = 1 / (sq / Double(n) + epsilon).squareRoot()
        for i in 0..<n { y[i] = (x[i] - mu) * inv * weight[i] + bias[i] }
        return (mu, inv)
    }

    public static func layerNormBackwardRow(
        dx: UnsafeMutablePointer<Double>, accumulate: Bool,
        dWeight: UnsafeMutablePointer<Double>, dBias: UnsafeMutablePointer<Double>,
        dy: UnsafePointer<Double>, x: UnsafePointer<Double>, mean mu: Double, rstd inv: Double,
        weight: UnsafePointer<Double>, width n: Int
    ) {
        var sumG = 0.0, sumGX = 0.0
        for i in 0..<n {
            let xhat = (x[i] - mu) * inv
            let g = dy[i] * weight[i]
            sumG += g
            sumGX += g * xhat
            dWeight[i] += dy[i] * xhat
            dBias[i] += dy[i]
        }
        let meanG = sumG / Double(n), meanGX = sumGX / Double(n)
        for i in 0..<n {
            let xhat = (x[i] - mu) * inv
            let v = inv * (dy[i] * weight[i] - meanG - xhat * meanGX)
            dx[i] = accumulate ? dx[i] + v : v
        }
    }
}
