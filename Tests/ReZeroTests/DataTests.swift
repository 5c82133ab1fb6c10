import XCTest
@testable import ReZero

final class DataTests: XCTestCase {
    func testStandardEnwik8Split() {
        XCTAssertEqual(Corpus.range(.train, count: 100_000_000), 0..<90_000_000)
        XCTAssertEqual(Corpus.range(.valid, count: 100_000_000), 90_000_000..<95_000_000)
        XCTAssertEqual(Corpus.range(.test, count: 100_000_000), 95_000_000..<100_000_000)
    }

    /// With any eval context C < T, and over a whole split or its first bytes: every byte but the
    /// first is scored exactly once, windows hold at most T bytes, and outside the first window
    /// each scored byte is predicted from at least C + 1 bytes. C = 0 is the non-overlapping tiling.
    func testEvaluationWindowsScoreEveryByteOnceWithAtLeastTheContext() {
        let corpus = Corpus(name: "t", bytes: [UInt8](repeating: 1, count: 1003))
        let t = 7
        for split in Split.allCases {
            for limit in [nil, 30, 8, 2] {
                var r = corpus.range(split)
                if let limit { r = r.lowerBound..<(r.lowerBound + limit) }
                for context in 0..<t {
                    let windows = corpus.evaluationWindows(split, sequence: t, context: context, limit: limit)
                    let label = "\(split) limit \(String(describing: limit)) context \(context)"
                    // Window position p predicts byte inputs.lowerBound + p + 1 from the p + 1 bytes before it.
                    let scored = windows.flatMap { w in (w.firstScored..<w.inputs.count).map { w.inputs.lowerBound + $0 + 1 } }
                    XCTAssertEqual(scored.sorted(), Array((r.lowerBound + 1)..<r.upperBound), label)
                    XCTAssertEqual(windows.reduce(0) { $0 + $1.scored }, r.count - 1, label)
                    XCTAssertEqual(windows.first?.firstScored ?? 0, 0, label)
                    for w in windows {
                        XCTAssertTrue(w.inputs.count <= t && w.scored >= 1 && r.contains(w.inputs.lowerBound), label)
                        XCTAssertLessThanOrEqual(w.inputs.upperBound, r.upperBound - 1, label)
                    }
                    for w in windows.dropFirst() { XCTAssertEqual(w.firstScored, context, label) }
                    if context == 0 {
                        // Today's tiling: back to back, each scored whole.
                        XCTAssertEqual(windows.flatMap { Array($0.inputs) }, Array(r.lowerBound..<(r.upperBound - 1)), label)
                    } else if r.count > 2 * t {
                        XCTAssertEqual(windows[1].inputs.lowerBound, windows[0].inputs.upperBound - context, label)
                    }
                }
            }
        }
    }

    func testEvalContextMustBeBelowTheSequenceLength() {
        XCTAssertNoThrow(try Corpus.validate(evalContext: 0, sequence: 16))
        XCTAssertNoThrow(try Corpus.validate(evalContext: 15, sequence: 16))
        for bad in [16, 40, -1] {
            XCTAssertThrowsError(try Corpus.validate(evalContext: bad, sequence: 16)) {
                XCTAssertEqual(($0 as? RezeroError)?.status, .usage)
                XCTAssertTrue("\($0)".contains("--eval-context \(bad)"), "\($0)")
            }
        }
        var config = TrainingConfig()
        config.evalContext = config.model.seqLen
        XCTAssertThrowsError(try config.validate()) { XCTAssertTrue("\($0)".contains("--eval-context \(config.model.seqLen)")) }
    }

    func testGlobalBatchDoesNotDependOnHowItIsShared() {
        let corpus = SyntheticSource.standard.corpus(bytes: 50_000)
        let t = 16, batch = 8
        var whole = [UInt8](repeating: 0, count: batch * t), wholeTargets = whole
        corpus.fillTrainingBatch(tokens: &whole, targets: &wholeTargets, seed: 5, step: 3, first: 0, count: batch, sequence: t)
        var shared = [UInt8](), sharedTargets = [UInt8]()
        for rank in 0..<4 {
            var part = [UInt8](repeating: 0, count: 2 * t), partTargets = part
            corpus.fillTrainingBatch(tokens: &part, targets: &partTargets, seed: 5, step: 3, first: 2 * rank, count: 2, sequence: t)
            shared += part
            sharedTargets += partTargets
        }
        XCTAssertEqual(whole, shared)
        XCTAssertEqual(wholeTargets, sharedTargets)
        XCTAssertEqual(Array(whole[1..<t]), Array(wholeTargets[0..<(t - 1)]), "targets are the inputs shifted by one")
        var other = whole, otherTargets = whole
        corpus.fillTrainingBatch(tokens: &other, targets: &otherTargets, seed: 5, step: 4, first: 0, count: batch, sequence: t)
        XCTAssertNotEqual(whole, other, "a different step draws a different batch")
    }

    /// The exact entropy rate must match the empirical code length of a long sample.
    func testSyntheticEntropyRateMatchesSample() {
        let source = SyntheticSource.standard
        let text = source.generate(bytes: 2_000_000, seed: 9)
        // Decode tokens: each ends at the first space or newline.
        var index: [[UInt8]: Int] = [:]
        for (i, t) in source.tokens.enumerated() { index[t] = i }
        var tokens: [Int] = []
        var current: [UInt8] = []
        for byte in text {
            current.append(byte)
            if byte == 0x20 || byte == 0x0A {
                tokens.append(index[current]!)
                current = []
            }
        }
        var bits = 0.0, bytes = 0
        for (a, b) in zip(tokens, tokens.dropFirst()) {
            let p = source.successors[a].first { $0.token == b }!.probability
            bits -= log2(p)
            bytes += source.tokens[b].count
        }
        let empirical = bits / Double(bytes)
        XCTAssertEqual(empirical, source.entropyRate, accuracy: 0.01 * source.entropyRate)
        XCTAssertGreaterThan(source.entropyRate, 0.1)
    }

    func testCounterRandomIsAPureFunction() {
        let a = (0..<100).map { CounterRandom.bits(seed: 1, stream: 2, counter: UInt64($0)) }
        let b = (0..<100).map { CounterRandom.bits(seed: 1, stream: 2, counter: UInt64($0)) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set(a).count, 100)
        let mean = (0..<10_000).map { CounterRandom.uniform(seed: 3, stream: 1, counter: UInt64($0)) }.reduce(0, +) / 10_000
        XCTAssertEqual(mean, 0.5, accuracy: 0.01)
    }
}
