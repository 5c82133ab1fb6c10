import XCTest
@testable import ReZero

/// `compare`'s arithmetic on made-up curves: the speed-up read at the reference's best, the
/// spreads over seeds, the choice among a grid, and the table built from them.
final class ComparisonTests: XCTestCase {
    typealias C = Comparison

    static func trial(_ run: String, seed: UInt64 = 1, lr: Double = 1e-3, warmup: Int = 0, curve: [(Int, Double)],
                      status: TrainingSummary.Status = .completed, test: Double? = nil) -> C.Trial {
        let validation = curve.map { C.Evaluation(step: $0.0, bpb: $0.1) }
        return C.Trial(run: run, layers: 2, setting: C.Setting(learningRate: lr, warmup: warmup, seed: seed), status: status,
                       steps: curve.last?.0 ?? 0, seconds: 10, validation: validation,
                       finalValidBpb: status == .completed ? validation.last?.bpb : nil, testBpb: test,
                       directory: "/tmp/\(run)/\(lr)/\(warmup)/\(seed)")
    }

    func testSpeedupIsReadAtTheReferencesBestLevel() throws {
        // The reference is best (3.2) at step 300 and worse after; the run first gets there at 200.
        let reference = Self.trial("postnorm+warmup", curve: [(100, 4.0), (200, 3.5), (300, 3.2), (400, 3.3)])
        let run = Self.trial("rezero", curve: [(100, 3.6), (200, 3.1), (300, 2.9)])
        let speedup = try XCTUnwrap(C.Speedup(reference: reference, run: run))
        XCTAssertEqual(speedup, .reached(level: 3.2, referenceSteps: 300, runSteps: 200))
        XCTAssertEqual(speedup.ratio, 1.5)
        // Exactly the level counts as reaching it; the reference against itself is 1.
        XCTAssertEqual(C.Speedup(reference: reference, run: Self.trial("x", curve: [(50, 3.2)]))?.ratio, 6)
        XCTAssertEqual(C.Speedup(reference: reference, run: reference)?.ratio, 1)
    }

    func testSpeedupOfARunThatNeverReachesTheLevelSaysSo() throws {
        let reference = Self.trial("postnorm+warmup", curve: [(100, 4.0), (200, 3.0)])
        let slow = Self.trial("slow", curve: [(100, 4.5), (200, 3.4), (300, .nan)], status: .diverged)
        let speedup = try XCTUnwrap(C.Speedup(reference: reference, run: slow))
        XCTAssertEqual(speedup, .neverReached(level: 3.0, best: 3.4))
        XCTAssertNil(speedup.ratio)
        XCTAssertEqual(C.Speedup(reference: reference, run: Self.trial("none", curve: [])), .neverReached(level: 3.0, best: nil))
        // A reference with no finite evaluation gives no level to read at.
        XCTAssertNil(C.Speedup(reference: Self.trial("blown", curve: [(100, .nan)], status: .diverged), run: slow))
    }

    func testSpreadIsMeanSampleDeviationAndRange() throws {
        let spread = try XCTUnwrap(C.Spread([1, 2, 3, 6]))
        XCTAssertEqual(spread.mean, 3)
        XCTAssertEqual(spread.sd, (14.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual([spread.min, spread.max], [1, 6])
        XCTAssertEqual(C.Spread([2])?.sd, 0)
        XCTAssertNil(C.Spread([]))
    }

    func testTheGridChoosesFewestStepsToTargetThenLowestFinalValue() {
        let fast = Self.trial("r", lr: 1e-2, curve: [(100, 2.9), (200, 2.7)])
        let slowButLower = Self.trial("r", lr: 5e-3, curve: [(100, 3.1), (200, 2.5)])
        let neverA = Self.trial("r", lr: 1e-3, curve: [(100, 3.5), (200, 3.2)])
        let neverB = Self.trial("r", lr: 2e-3, curve: [(100, 3.4), (200, 3.1)])
        let diverged = Self.trial("r", lr: 2e-2, curve: [(100, 3.0)], status: .diverged)
        XCTAssertEqual(C.RowResult.choose([slowButLower, fast, neverA], target: 3.0)?.setting.learningRate, 1e-2)
        XCTAssertEqual(C.RowResult.choose([neverA, neverB, diverged], target: 2.8)?.setting.learningRate, 2e-3)
        XCTAssertEqual(C.RowResult.choose([diverged], target: 2.8)?.setting.learningRate, 2e-2)
        XCTAssertNil(C.RowResult.choose([], target: 2.8))
    }

    /// Three seeds of a row and of the reference: the means, spreads and paired speed-ups in the
    /// results and the table are those of the seeds' own curves.
    func testTableReportsMeansAndSpreadsOverSeeds() throws {
        let reference = "postnorm+warmup"
        // The reference's best per seed: 3.0 at 300, 3.1 at 300, 2.9 at 400.
        let referenceSeeds = [Self.trial(reference, seed: 1, warmup: 100, curve: [(100, 3.6), (200, 3.3), (300, 3.0), (400, 3.05)], test: 3.1),
                              Self.trial(reference, seed: 2, warmup: 100, curve: [(100, 3.7), (200, 3.4), (300, 3.1), (400, 3.2)], test: 3.2),
                              Self.trial(reference, seed: 3, warmup: 100, curve: [(100, 3.5), (200, 3.2), (300, 3.0), (400, 2.9)], test: 3.0)]
        // ReZero reaches those levels at 100, 200 and never (seed 3 ends at 2.95 > 2.9); the target 3.0 at 100, 200, 300.
        let rezeroSeeds = [Self.trial("rezero", seed: 1, curve: [(100, 2.9), (200, 2.8), (300, 2.7), (400, 2.6)], test: 2.7),
                           Self.trial("rezero", seed: 2, curve: [(100, 3.2), (200, 3.0), (300, 2.9), (400, 2.8)], test: 2.9),
                           Self.trial("rezero", seed: 3, curve: [(100, 3.3), (200, 3.1), (300, 3.0), (400, 2.95)], test: 3.0)]
        let rows = [C.RowResult(run: reference, layers: 2, tuning: [referenceSeeds[0]], missing: [], seeds: referenceSeeds, target: 3.0),
                    C.RowResult(run: "rezero", layers: 2, tuning: [rezeroSeeds[0]], missing: [], seeds: rezeroSeeds, target: 3.0)]
        let depth = C.DepthResult(layers: 2, rows: rows)
        let rezero = depth.rows[1]
        let steps = try XCTUnwrap(rezero.stepsToTarget)
        XCTAssertEqual([steps.mean, steps.min, steps.max, Double(steps.count)], [200, 100, 300, 3])
        XCTAssertEqual(try XCTUnwrap(rezero.finalValid).mean, (2.6 + 2.8 + 2.95) / 3, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(rezero.test).mean, (2.7 + 2.9 + 3.0) / 3, accuracy: 1e-12)
        let speedup = try XCTUnwrap(rezero.speedups.first { $0.reference == reference })
        XCTAssertEqual(speedup.seeds, [1, 2, 3])
        XCTAssertEqual(speedup.speedups.map(\.ratio), [3, 1.5, nil])
        XCTAssertEqual(speedup.reached, 2)
        XCTAssertEqual(try XCTUnwrap(speedup.ratio).mean, 2.25)
        // The reference has no Pre-LN row here: that speed-up is not defined.
        XCTAssertNil(rezero.speedups.first { $0.reference == "prenorm+warmup" })
        // Steps to 3.0 for the reference: 300, never (3.1), 300.
        XCTAssertEqual(depth.rows[0].stepsToTarget?.mean, 300)

        let grid = C.Grid(learningRates: [1e-3], warmups: [100], seeds: [1, 2, 3])
        let table = C.table([depth], C.TableContext(base: TrainingConfig(), grid: grid, target: 3.0, corpus: "made-up",
                                                     corpusBytes: 1000, ranks: 1, threads: 2))
        XCTAssertTrue(table.contains("| rezero | 0.001 | – | 200 (100–300), 3/3 | 2.25× (1.50–3.00), 2/3 | – | 2.783 ± 0.176 |"), table)
        XCTAssertTrue(table.contains("| postnorm+warmup | 0.001 | 100 | 300, 2/3 | 1.00×, 3/3 |"), table)
        XCTAssertTrue(table.contains("| rezero | 2.600 (100) | 2.800 (200) | 2.950 (300) |"), table)
        XCTAssertTrue(table.contains("6 runs, 1m00s of training"), table)
    }

    func testARowThatNeverReachesTheReferencesLevelIsReportedSo() {
        let reference = [Self.trial("postnorm+warmup", seed: 1, curve: [(100, 3.0)]), Self.trial("postnorm+warmup", seed: 2, curve: [(100, 3.1)])]
        let slow = [Self.trial("rezero-alpha1", seed: 1, curve: [(100, 4.0)]),
                    Self.trial("rezero-alpha1", seed: 2, curve: [(50, .nan)], status: .diverged)]
        let depth = C.DepthResult(layers: 2, rows: [
            C.RowResult(run: "postnorm+warmup", layers: 2, tuning: reference, missing: [], seeds: reference, target: 2.0),
            C.RowResult(run: "rezero-alpha1", layers: 2, tuning: slow, missing: [], seeds: slow, target: 2.0)])
        let row = depth.rows[1]
        XCTAssertEqual(row.speedups.first?.reached, 0)
        XCTAssertNil(row.speedups.first?.ratio)
        XCTAssertEqual(C.speedupCell(row, against: "postnorm+warmup"), "never: best 4.000 > 3.000 (0/2)")
        XCTAssertEqual(C.stepsCell(row), "not reached (0/2)")
        XCTAssertEqual(C.statusCell(row), "diverged (1/2) at step 50")
    }

    /// A setting's seed is the run's seed: it changes the initialization, the batches and the
    /// dropout masks, and nothing else of the configuration.
    func testASeedChangesInitializationBatchesAndDropoutMasks() {
        var base = SmallRun.config()
        base.dropout = 0.2
        let run = C.Run(variant: .rezero, warmup: false)
        let one = C.config(run, C.Setting(learningRate: 1e-3, warmup: 0, seed: 1), base: base)
        let two = C.config(run, C.Setting(learningRate: 1e-3, warmup: 0, seed: 2), base: base)
        XCTAssertEqual([one.seed, two.seed], [1, 2])
        var rest = two
        rest.seed = one.seed
        XCTAssertEqual(rest, one, "only the seed differs")

        func parameters(_ c: TrainingConfig) -> [Float] {
            let model = Model<Float>(config: c.model, seed: c.seed)
            return Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        }
        XCTAssertEqual(parameters(one), parameters(one))
        XCTAssertNotEqual(parameters(one), parameters(two), "initialization")

        func batch(_ c: TrainingConfig) -> [UInt8] {
            let n = 4 * c.model.seqLen
            var tokens = [UInt8](repeating: 0, count: n), targets = tokens
            SmallRun.corpus.fillTrainingBatch(tokens: &tokens, targets: &targets, seed: c.seed, step: 3, first: 0, count: 4,
                                              sequence: c.model.seqLen)
            return tokens
        }
        XCTAssertEqual(batch(one), batch(one))
        XCTAssertNotEqual(batch(one), batch(two), "data order")

        func mask(_ c: TrainingConfig) -> [Bool] {
            let dropout = Dropout(rate: c.dropout, seed: c.seed, step: 3, layer: 1)
            let row = dropout.row(.activation, sequence: 0, position: 5)
            return (0..<256).map { dropout.keeps(row, column: $0) }
        }
        XCTAssertEqual(mask(one), mask(one))
        XCTAssertNotEqual(mask(one), mask(two), "dropout masks")
    }

    func testSettingsHaveADirectoryEachAndTheGridTunesOnTheFirstSeed() {
        let grid = C.Grid(learningRates: [1e-3, 1e-2], warmups: [100, 500], seeds: [4, 5, 6])
        let warm = C.Run(variant: .prenorm, warmup: true), cold = C.Run(variant: .rezero, warmup: false)
        XCTAssertEqual(grid.tuning(warm).map { $0.path(of: warm) },
                       ["lr-0.001/warmup-100/seed-4", "lr-0.001/warmup-500/seed-4", "lr-0.01/warmup-100/seed-4", "lr-0.01/warmup-500/seed-4"])
        XCTAssertEqual(grid.tuning(cold).map { $0.path(of: cold) }, ["lr-0.001/seed-4", "lr-0.01/seed-4"])
        XCTAssertEqual(C.config(cold, C.Setting(learningRate: 1e-3, warmup: 0, seed: 4), base: TrainingConfig()).warmup, 0)
        XCTAssertEqual(C.config(warm, C.Setting(learningRate: 1e-3, warmup: 500, seed: 4), base: TrainingConfig()).warmup, 500)
    }
}
