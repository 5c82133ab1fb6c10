/// Dropout masks as a pure function of (seed, step, layer, site, global sequence, head, position,
/// column): nothing is stored, backward regenerates the mask, and it is the same whatever the
/// number of ranks, threads, attention workers or block sizes.
///
/// Two levels, in the style of `CounterRandom`: a row key (64 bits, SplitMix64 finalizers over the
/// fields; computed once per row) and, per column c, a keyed 32-bit hash of c — lowbias32 (two
/// xor-shift-multiply rounds) with the row key's low half xored into the input and its high half
/// between the rounds. Only 32-bit xor, shift, multiply and compare, so the per-element loop
/// vectorizes (SSE2 here, 4 lanes). An element is kept iff its top 24 bits ≥ round(p·2²⁴); kept
/// elements are multiplied by 1/(1 − p′) with p′ = round(p·2²⁴)/2²⁴ the exact drop probability, so
/// E[multiplier] = 1 exactly.
struct Dropout: Sendable {
    /// Where the mask applies; part of the key, so sites never share masks.
    enum Site: UInt64, Sendable, CaseIterable {
        /// Attention probabilities: row = (sequence, head, query i), column = key j.
        case attention = 1
        /// The FFN activation: row = (sequence, position), column = feature.
        case activation = 2
        /// The attention sublayer's output (after the projection): row = (sequence, position).
        case attentionOutput = 3
        /// The FFN sublayer's output (after fc2): row = (sequence, position).
        case feedForwardOutput = 4
    }

    /// The key of one row; the mask of the row is a function of it and the column alone.
    struct Row: Sendable {
        let low: UInt32, high: UInt32
        init(low: UInt32, high: UInt32) { self.low = low; self.high = high }
    }

    /// Global index of this micro-batch's sequence 0 (rank offset + micro-batch offset).
    let firstSequence: Int
    /// Keep iff (hash >> 8) ≥ threshold.
    let threshold: Int32
    /// 1/(1 − p′).
    let keepScale: Double
    let base: UInt64

    /// No dropout: kernels skip every mask computation.
    static let none = Dropout(rate: 0, seed: 0, step: 0, layer: 0)

    init(rate: Double, seed: UInt64, step: Int, layer: Int, firstSequence: Int = 0) {
        precondition(rate >= 0 && rate < 1, "dropout rate must be in [0, 1)")
        self.firstSequence = firstSequence
        let t = (rate * 16_777_216).rounded()
        threshold = Int32(t)
        keepScale = 1 / (1 - t / 16_777_216)
        var z = Dropout.mix(seed &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03)
        z = Dropout.mix(z ^ (UInt64(truncatingIfNeeded: step) &* 0xC2B2_AE3D_27D4_EB4F))
        base = Dropout.mix(z ^ (UInt64(truncatingIfNeeded: layer) &* 0x1656_67B1_9E37_79F9))
    }

    /// The drop probability actually used (rate rounded to a multiple of 2⁻²⁴).
    var effectiveRate: Double { Double(threshold) / 16_777_216 }
    /// False for rate 0: callers and kernels skip the masks entirely.
    var isActive: Bool { threshold > 0 }

    /// The key of row (site, firstSequence + sequence, head, position); `sequence` is the local index.
    func row(_ site: Site, sequence: Int, head: Int = 0, position: Int) -> Row {
        var z = Dropout.mix(base ^ (site.rawValue &* 0x94D0_49BB_1331_11EB))
        z = Dropout.mix(z ^ (UInt64(truncatingIfNeeded: firstSequence &+ sequence) &* 0xBF58_476D_1CE4_E5B9))
        z = Dropout.mix(z ^ ((UInt64(truncatingIfNeeded: head) << 32 | UInt64(truncatingIfNeeded: position))
                             &* 0x9E37_79B9_7F4A_7C15))
        return Row(low: UInt32(truncatingIfNeeded: z), high: UInt32(truncatingIfNeeded: z >> 32))
    }

    /// The 32 random bits of (row, column).
    @inline(__always)
    static func bits(_ row: Row, column: UInt32) -> UInt32 {
        var x = column ^ row.low
        x = (x ^ (x >> 16)) &* 0x7FEB_352D
        x ^= row.high
        x = (x ^ (x >> 15)) &* 0x846C_A68B
        return x ^ (x >> 16)
    }

    /// Whether element (row, column) is kept.
    @inline(__always)
    func keeps(_ row: Row, column: Int) -> Bool {
        Int32(bitPattern: Dropout.bits(row, column: UInt32(truncatingIfNeeded: column)) >> 8) >= threshold
    }

    /// out[j] = multiplier of (row, column + j): 0 or 1/(1 − p′), for j in 0..<count.
    func fill<S: TensorScalar>(_ out: UnsafeMutablePointer<S>, row: Row, from column: Int, count: Int) {
        let keep = S(keepScale), th = threshold
        var c = UInt32(truncatingIfNeeded: column)
        for j in 0..<count {
            out[j] = Int32(bitPattern: Dropout.bits(row, column: c) >> 8) >= th ? keep : 0
            c &+= 1
        }
    }

    /// x[j] ← x[j] · factor · multiplier(row, column + j) for j in 0..<count.
    func multiply<S: TensorScalar>(
        _ x: UnsafeMutablePointer<S>, row: Row, from column: Int, count: Int, factor: S = 1
    ) {
        let keep = S(keepScale) * factor, th = threshold
        var c = UInt32(truncatingIfNeeded: column)
        for j in 0..<count {
            x[j] *= Int32(bitPattern: Dropout.bits(row, column: c) >> 8) >= th ? keep : 0
            c &+= 1
        }
    }

    /// Element-wise sites on [batch·sequence, width] rows: y = x ∘ M, y may be x. The backward is
    /// the same call on the gradient (dx = dy ∘ M), in place. Does nothing when inactive (y must
    /// then already hold x if they differ: call only when `isActive`, or copy).
    func apply<S: TensorScalar>(
        _ y: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, site: Site, batch: Int, sequence: Int, width: Int
    ) {
        guard isActive else {
            if UnsafePointer(y) != x { y.update(from: x, count: batch * sequence * width) }
            return
        }
        let keep = S(keepScale), th = threshold
        for b in 0..<batch {
            for t in 0..<sequence {
                let key = row(site, sequence: b, position: t)
                let offset = (b * sequence + t) * width
                let xr = x + offset, yr = y + offset
                if UnsafePointer(yr) == xr {
                    // In place as its own loop: LLVM's overlap check would keep y[j] = x[j]·m scalar.
                    multiply(yr, row: key, from: 0, count: width)
                } else {
                    var c: UInt32 = 0
                    for j in 0..<width {
                        yr[j] = xr[j] * (Int32(bitPattern: Dropout.bits(key, column: c) >> 8) >= th ? keep : 0)
                        c &+= 1
                    }
                }
            }
        }
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
