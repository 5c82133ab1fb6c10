import RealModule

/// The built-in default corpus: a first-order Markov chain over word and markup tokens, written
/// out as bytes. Every token ends in a space or newline and holds no other, so the byte stream
/// decodes uniquely into tokens and its entropy rate is exactly
///     H = Σᵢ πᵢ H(Pᵢ·) / Σᵢ πᵢ |tokenᵢ|   bits per byte,
/// with π the chain's stationary distribution: the floor no model can beat.
public struct SyntheticSource: Sendable {
    public let tokens: [[UInt8]]
    /// successors[i] are (token, probability) pairs, probabilities summing to 1.
    public let successors: [[(token: Int, probability: Double)]]

    public static let standard = SyntheticSource(seed: 2020)

    static let vocabulary: [String] = [
        "the ", "of ", "and ", "in ", "was ", "a ", "is ", "to ", "river ", "city ", "king ",
        "language ", "music ", "war ", "first ", "people ", "north ", "island ", "century ",
        "[[Paris]] ", "[[Europe]] ", "''see'' ", "{{cite}} ", "&amp; ", "==History==\n",
        "<p>\n", "</p>\n", "|- ",
    ]

    public init(seed: UInt64, successorsPerToken: Int = 3) {
        tokens = Self.vocabulary.map { Array($0.utf8) }
        let n = tokens.count
        var table: [[(token: Int, probability: Double)]] = []
        for i in 0..<n {
            // The ring edge i → i+1 keeps the chain irreducible; the others are random.
            var next = [(i + 1) % n]
            var counter: UInt64 = 0
            while next.count < successorsPerToken {
                let candidate = CounterRandom.below(n, seed: seed, stream: CounterRandom.Stream.corpus.rawValue,
                                                    counter: UInt64(i) << 32 | counter)
                counter += 1
                if !next.contains(candidate) { next.append(candidate) }
            }
            let weights = next.indices.map { k in
                0.2 + CounterRandom.uniform(seed: seed, stream: CounterRandom.Stream.corpus.rawValue,
                                            counter: UInt64(i) << 32 | (1 << 31) | UInt64(k))
            }
            let total = weights.reduce(0, +)
            table.append(zip(next, weights).map { ($0, $1 / total) })
        }
        successors = table
    }

    /// The stationary distribution, by power iteration on the lazy chain (same π, aperiodic).
    public var stationary: [Double] {
        let n = tokens.count
        var pi = [Double](repeating: 1 / Double(n), count: n)
        for _ in 0..<100_000 {
            var next = pi.map { $0 / 2 }
            for i in 0..<n { for (j, p) in successors[i] { next[j] += pi[i] * p / 2 } }
            let change = zip(pi, next).map { abs($0 - $1) }.max()!
            pi = next
            if change < 1e-16 { break }
        }
        return pi
    }

    /// Exact entropy rate in bits per byte.
    public var entropyRate: Double {
        let pi = stationary
        var bitsPerToken = 0.0, bytesPerToken = 0.0
        for i in tokens.indices {
            for (_, p) in successors[i] { bitsPerToken -= pi[i] * p * Double.log2(p) }
            bytesPerToken += pi[i] * Double(tokens[i].count)
        }
        return bitsPerToken / bytesPerToken
    }

    /// `count` bytes of the chain started from its stationary distribution.
    public func generate(bytes count: Int, seed: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count + 32)
        let stream = CounterRandom.Stream.corpus.rawValue + 100
        var state = Self.draw(stationary.enumerated().map { ($0.offset, $0.element) },
                              CounterRandom.uniform(seed: seed, stream: stream, counter: 0))
        var counter: UInt64 = 1
        while out.count < count {
            out.append(contentsOf: tokens[state])
            state = Self.draw(successors[state], CounterRandom.uniform(seed: seed, stream: stream, counter: counter))
            counter += 1
        }
        return Array(out.prefix(count))
    }

    public func corpus(bytes count: Int = 2_000_000, seed: UInt64 = 1) -> Corpus {
        Corpus(name: "built-in synthetic Markov source", bytes: generate(bytes: count, seed: seed),
               entropyRate: entropyRate)
    }

    private static func draw(_ choices: [(token: Int, probability: Double)], _ u: Double) -> Int {
        var cumulative = 0.0
        for (token, p) in choices {
            cumulative += p
            if u < cumulative { return token }
        }
        return choices.last!.token
    }
}
