import RealModule

/// Counter-based random numbers: every draw is a pure function of (seed, stream, counter), so any
/// value of a run — an initial weight, the batch of step s — is reproducible without replaying a
/// generator's state, and resuming at step s needs nothing but s.
public enum CounterRandom {
    public enum Stream: UInt64 {
        case initialization = 1, batches = 2, sampling = 3, corpus = 4
    }

    @inline(__always)
    public static func bits(seed: UInt64, stream: UInt64, counter: UInt64) -> UInt64 {
        var z = seed &* 0x9E37_79B9_7F4A_7C15
        z = mix(z ^ (stream &* 0xC2B2_AE3D_27D4_EB4F))
        z = mix(z ^ (counter &* 0x1656_67B1_9E37_79F9))
        return mix(z &+ 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public static func uniform(seed: UInt64, stream: UInt64, counter: UInt64) -> Double {
        Double(bits(seed: seed, stream: stream, counter: counter) >> 11) * 0x1.0p-53
    }

    /// Standard normal by Box–Muller on two counters.
    public static func normal(seed: UInt64, stream: UInt64, counter: UInt64) -> Double {
        let u1 = 1 - uniform(seed: seed, stream: stream, counter: 2 &* counter)
        let u2 = uniform(seed: seed, stream: stream, counter: 2 &* counter &+ 1)
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// Uniform integer in 0..<bound (Lemire's multiply-high; bias below 2⁻⁴⁰ for our bounds).
    @inline(__always)
    public static func below(_ bound: Int, seed: UInt64, stream: UInt64, counter: UInt64) -> Int {
        let r = bits(seed: seed, stream: stream, counter: counter).multipliedFullWidth(by: UInt64(bound))
        return Int(r.high)
    }

    @inline(__always)
    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

