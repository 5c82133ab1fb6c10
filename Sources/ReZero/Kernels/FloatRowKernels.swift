/// The row kernels' Float path: explicit SIMD16 (four SSE registers: the compiler targets
/// baseline x86-64) with fixed-order reductions, and Cephes' exp for softmax and GELU.
let geluSqrt2OverPi = 0.7978845608028654
let geluCubic = 0.044715

// MARK: - Float: explicit SIMD16 reductions, loops LLVM vectorizes

typealias Vector16 = SIMD16<Float>

@inline(__always)
func load16(_ p: UnsafePointer<Float>, _ i: Int) -> Vector16 {
    UnsafeRawPointer(p + i).loadUnaligned(as: Vector16.self)
}

@inline(__always)
func store16(_ v: Vector16, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector16.self)
}

/// The fixed lane tree: (0–7 + 8–15) → (0–3 + 4–7) → (0–1 + 2–3) → 0 + 1.
@inline(__always)
func reduceLanes(_ v: Vector16) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}

/// Cephes' single-precision exp for v in [−87, 88] (within 1.2e-7 relative of libm), on any
/// vector width: a degree-6 polynomial p on the reduced argument, and t, whose low bits hold the
/// exponent k of e^v = p·2ᵏ. One definition for the SIMD16 body of a loop and for its scalar
/// tail (as SIMD2, the narrowest vector), so the two agree bit for bit.
@inline(__always)
func cephesExpParts<V: SIMD>(_ v: V) -> (p: V, t: V) where V.Scalar == Float {
    let roundingBias = V(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer in the low bits
    let t = v * 1.442_695_04 + roundingBias
    let k = t - roundingBias
    let r = v - k * 0.693_359_375 + k * 2.121_944_4e-4
    var p = V(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    p = p * r * r + r + 1
    return (p, t)
}

extension Float {
    /// Cephes' exp of one value (v in [−87, 88]).
    @inline(__always)
    static func cephesExp(_ v: Float) -> Float {
        let (p, t) = cephesExpParts(SIMD2(repeating: v))
        let exponent = Int32(bitPattern: t[0].bitPattern) &- 0x4B40_0000 &+ 127
        return p[0] * Float(bitPattern: UInt32(bitPattern: exponent) &<< 23)
    }
}

/// Cephes' exp on 16 lanes (v already clamped to [−87, 88]). Written on SIMD16 (four SSE
/// registers) rather than left to the loop vectorizer: the four independent chains interleave,
/// where the vectorizer's single 4-lane chain is latency-bound (measured 2× slower).
@inline(__always)
func cephesExp16(_ v: Vector16) -> Vector16 {
    let (p, t) = cephesExpParts(v)
    let exponent = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(exponent, to: Vector16.self)
}

/// max(v, lo) lane-wise with Swift.max's NaN behaviour (NaN stays NaN).
@inline(__always)
func clampBelow(_ v: Vector16, _ lo: Float) -> Vector16 {
    var r = v
    r.replace(with: Vector16(repeating: lo), where: r .< Vector16(repeating: lo))
    return r
}

/// min(v, hi) lane-wise with Swift.min's NaN behaviour.
@inline(__always)
func clampAbove(_ v: Vector16, _ hi: Float) -> Vector16 {
    var r = v
    r.replace(with: Vector16(repeating: hi), where: r .> Vector16(repeating: hi))
    return r
}

extension Float: RowKernels {
    public static func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = Vector16()
        var i = 0
        while i &+ 16 <= n { acc += load16(x, i); i &+= 16 }
        var s = reduceLanes(acc)
        while i < n { s += x[i]; i &+= 1 }
        return s
    }

    public static func innerProduct(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = Vector16()
        var i = 0
        while i &+ 16 <= n { acc += load16(x, i) * load16(y, i); i &+= 16 }
        var s = reduceLanes(acc)
        while i < n { s += x[i] * y[i]; i &+= 1 }
        return s
    }

    public static func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var m = x[0]
        if n >= 16 {
            var acc = load16(x, 0)
            i = 16
            while i &+ 16 <= n {
                let v = load16(x, i)
                acc.replace(with: v, where: v .> acc)
                i &+= 16
            }
            let a = acc.lowHalf.replacing(with: acc.highHalf, where: acc.highHalf .> acc.lowHalf)
            let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
            let c = b.lowHalf.replacing(with: b.highHalf, where: b.highHalf .> b.lowHalf)
            m = c[1] > c[0] ? c[1] : c[0]
        }
        while i < n { if x[i] > m { m = x[i] }; i &+= 1 }
        return m
    }

    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count n: Int, shift: Float) {
        let s16 = Vector16(repeating: shift)
        var i = 0
        while i &+ 16 <= n { store16(cephesExp16(clampBelow(load16(x, i) - s16, -87)), x, i); i &+= 16 }
        while i < n { x[i] = cephesExp(Swift.max(x[i] - shift, -87)); i &+= 1 }
    }

    public static func exponentiateAndSum(_ x: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Float {
        let s16 = Vector16(repeating: shift)
        var acc = Vector16()
        var i = 0
        while i &+ 16 <= n {
            let e = cephesExp16(clampBelow(load16(x, i) - s16, -87))
            store16(e, x, i)
            acc += e
            i &+= 16
        }
        var s = reduceLanes(acc)
        while i < n {
            let e = cephesExp(Swift.max(x[i] - shift, -87))
            x[i] = e
            s += e
            i &+= 1
        }
        return s
    }

    public static func softmaxGradientRow(
        _ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, count n: Int, logSumExp: Float, rowDot: Float
    ) {
        let l16 = Vector16(repeating: logSumExp), d16 = Vector16(repeating: rowDot)
        var j = 0
        while j &+ 16 <= n {
            let e = cephesExp16(clampBelow(load16(p, j) - l16, -87))
            store16(e, p, j)
            store16(e * (load16(g, j) - d16), g, j)
            j &+= 16
        }
        while j < n {
            let e = cephesExp(Swift.max(p[j] - logSumExp, -87))
            p[j] = e
            g[j] = e * (g[j] - rowDot)
            j &+= 1
        }
    }

    /// x·σ(2u) with u = √(2/π)(x + 0.044715x³): the tanh form without tanh's cancellation near 0
    /// (½(1 + tanh u) = σ(2u) = 1/(1 + e^{−2u})). x is clamped to [−20, 20] inside u (GELU is x or
    /// 0 to Float precision beyond) and the exponent to [−87, 88], and the numerator is max(x, −20):
    /// every input but NaN gives a finite result (±∞ give ∞ and −1.2e-37), NaN propagates.
    public static func geluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        let c0 = Float(geluSqrt2OverPi), c1 = Float(geluCubic)
        var i = 0
        while i &+ 16 <= n {
            let v = load16(x, i)
            let w = clampAbove(clampBelow(v, -20), 20)
            let u = c0 * (w + c1 * w * w * w)
            let e = cephesExp16(clampAbove(clampBelow(-2 * u, -87), 88))
            store16(clampBelow(v, -20) / (1 + e), y, i)
            i &+= 16
        }
        while i < n {
            let v = x[i]
            let w = Swift.min(Swift.max(v, -20), 20)
            let u = c0 * (w + c1 * w * w * w)
            let e = cephesExp(Swift.min(Swift.max(-2 * u, -87), 88))
            y[i] = Swift.max(v, -20) / (1 + e)
            i &+= 1
        }
    }

    /// gelu'(x) = s + x·s·(1 − s)·2u′ with s = σ(2u) and 1 − s = e·s (e = e^{−2u}: no cancellation);
    /// x clamped to [−20, 20] as in forward (the derivative is 1 or 0 to Float precision beyond).
    public static func geluBackward(_ d: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
        let c0 = Float(geluSqrt2OverPi), c1 = Float(geluCubic)
        let c2 = 2 * c0, c3 = 6 * c0 * c1
        var i = 0
        while i &+ 16 <= n {
            let w = clampAbove(clampBelow(load16(x, i), -20), 20)
            let u = c0 * (w + c1 * w * w * w)
            let e = cephesExp16(clampAbove(clampBelow(-2 * u, -87), 88))
            let s = 1 / (1 + e)
            store16(load16(d, i) * (s + w * s * (e * s) * (c2 + c3 * w * w)), d, i)
            i &+= 16
        }
        while i < n {
            let w = Swift.min(Swift.max(x[i], -20), 20)
            let u = c0 * (w + c1 * w * w * w)
            let e = cephesExp(Swift.min(Swift.max(-2 * u, -87), 88))
            let s = 1 / (1 + e)
            d[i] *= s + w * s * (e * s) * (c2 + c3 * w * w)
            i &+= 1
        }
    }

    public static func layerNormForwardRow(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, width n: Int, epsilon: Float
    ) -> (mean: Float, rstd: Float) {
        let mu = sum(x, count: n) / Float(n)
        // Centered values first (y as scratch), then their fixed-order sum of squares.
        var i = 0
        let m16 = Vector16(repeating: mu)
        while i &+ 16 <= n { store16(load16(x, i) - m16, y, i); i &+= 16 }
        while i < n { y[i] = x[i] - mu; i &+= 1 }
        let variance = innerProduct(y, y, count: n) / Float(n)
        let inv = 1 / (variance + epsilon).squareRoot()
        let inv16 = Vector16(repeating: inv)
        i = 0
        while i &+ 16 <= n {
            store16(load16(y, i) * inv16 * load16(weight, i) + load16(bias, i), y, i)
            i &+= 16
        }
        while i < n { y[i] = y[i] * inv * weight[i] + bias[i]; i &+= 1 }
        return (mu, inv)
    }

    public static func layerNormBackwardRow(
        dx: UnsafeMutablePointer<Float>, accumulate: Bool,
        dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>,
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean mu: Float, rstd inv: Float,
        weight: UnsafePointer<Float>, width n: Int
    ) {
        let mu16 = Vector16(repeating: mu), inv16 = Vector16(repeating: inv)
        var sumG = Vector16(), sumGX = Vector16()
        var i = 0
        while i &+ 16 <= n {
            let xhat = (load16(x, i) - mu16) * inv16, g = load16(dy, i)
            let gw = g * load16(weight, i)
            sumG += gw
            sumGX += gw * xhat
            store16(load16(dWeight, i) + g * xhat, dWeight, i)
            store16(load16(dBias, i) + g, dBias, i)
            i &+= 16
        }
        var sg = reduceLanes(sumG), sgx = reduceLanes(sumGX)
        while i < n {
            let xhat = (x[i] - mu) * inv, g = dy[i], gw = g * weight[i]
            sg += gw
            sgx += gw * xhat
            dWeight[i] += g * xhat
            dBias[i] += g
            i &+= 1
        }
        let meanG = sg / Float(n), meanGX = sgx / Float(n)
        let meanG16 = Vector16(repeating: meanG), meanGX16 = Vector16(repeating: meanGX)
        i = 0
        // Reads dy[i..<i+16] before writing dx there: safe when dx is dy.
        while i &+ 16 <= n {
            let xhat = (load16(x, i) - mu16) * inv16
            var v = inv16 * (load16(dy, i) * load16(weight, i) - meanG16 - xhat * meanGX16)
            if accumulate { v = load16(dx, i) + v }
            store16(v, dx, i)
            i &+= 16
        }
        while i < n {
            let xhat = (x[i] - mu) * inv
            let v = inv * (dy[i] * weight[i] - meanG - xhat * meanGX)
            dx[i] = accumulate ? dx[i] + v : v
            i &+= 1
        }
    }
}
