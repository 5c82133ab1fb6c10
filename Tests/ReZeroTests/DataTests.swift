import XCTest
@testable import ReZero

final class DataTests: XCTestCase {
    func testStandardEnwik8Split() {
        XCTAssertEqual(Corpus.range(.train, count: 100_000_000), 0..<90_000_000)
        XCTAssertEqual(Corpus.range(.valid, count: 100_000_000), 90_000_000..<95_000_000)
        XCTAssertEqual(Corpus.range(.test, count: 100_000_000), 95_000_000..<100_000_000)
    }

    func testEvaluationWindowsScoreEveryByteOnce() {
        let corpus = Corpus(name: "t", bytes: [UInt8](repeating: 1, count: 1003))
        for split in Split.allCases {
            let r = corpus.range(split)
            let windows = corpus.evaluationWindows(split, sequence: 7)
            // Targets are window + 1: together they must tile the split minus its first byte.
            var scored = windows.flatMap { ($0.lowerBound + 1)...$0.upperBound }
            scored.sort()
            XCTAssertEqual(scored, Array((r.lowerBound + 1)..<r.upperBound), "\(split)")
            XCTAssertTrue(windows.allSatisfy { $0.count <= 7 })
        }
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
