/// Row-wise LayerNorm over the last dimension, with affine weight and bias.
enum LayerNorm {
    static let epsilon = 1e-5

    /// Stores each row's mean and 1/σ for the backward pass.
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ y: UnsafeMutablePointer<S>, mean: UnsafeMutablePointer<S>, rstd: UnsafeMutablePointer<S>,
        _ x: UnsafePointer<S>, weight: UnsafePointer<S>, bias: UnsafePointer<S>, rows: Int, width: Int
    ) {
        let n = S(width)
        for r in 0..<rows {
            let xr = x + r * width, yr = y + r * width
            var sum: S = 0
            for i in 0..<width { sum += xr[i] }
            let mu = sum / n
            var sq: S = 0
            for i in 0..<width { let c = xr[i] - mu; sq += c * c }
            let inv = 1 / S.sqrt(sq / n + S(epsilon))
            for i in 0..<width { yr[i] = (xr[i] - mu) * inv * weight[i] + bias[i] }
            mean[r] = mu
            rstd[r] = inv
        }
    }

    /// Accumulates dWeight, dBias; writes dx, or adds to it when `accumulateInput`.
    @inline(__always)
    static func backward<S: TensorScalar>(
        dx: UnsafeMutablePointer<S>, accumulateInput: Bool,
        dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, x: UnsafePointer<S>, mean: UnsafePointer<S>, rstd: UnsafePointer<S>,
        weight: UnsafePointer<S>, rows: Int, width: Int
    ) {
        let n = S(width)
        for r in 0..<rows {
            let xr = x + r * width, dyr = dy + r * width, dxr = dx + r * width
            let mu = mean[r], inv = rstd[r]
            var sumG: S = 0, sumGX: S = 0
            for i in 0..<width {
                let xhat = (xr[i] - mu) * inv
                let g = dyr[i] * weight[i]
                sumG += g
                sumGX += g * xhat
                dWeight[i] += dyr[i] * xhat
                dBias[i] += dyr[i]
            }
            let meanG = sumG / n, meanGX = sumGX / n
            for i in 0..<width {
                let xhat = (xr[i] - mu) * inv
                let v = inv * (dyr[i] * weight[i] - meanG - xhat * meanGX)
                dxr[i] = accumulateInput ? dxr[i] + v : v
            }
        }
    }
}
