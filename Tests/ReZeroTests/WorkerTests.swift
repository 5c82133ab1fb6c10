import XCTest
@testable import ReZero
import TestSupport

/// Data parallelism inside the process: K workers train the model one thread does, up to the
/// order of Float sums, and the same K gives the same bits every time.
final class WorkerTests: XCTestCase {
    func testThreadLayoutSplitsTheMicroBatchOverTheThreads() {
        XCTAssertEqual(ThreadLayout.choose(threads: 4, microBatch: 16), ThreadLayout(workers: 4, blasThreads: 1))
        XCTAssertEqual(ThreadLayout.choose(threads: 4, microBatch: 3), ThreadLayout(workers: 3, blasThreads: 1))
        XCTAssertEqual(ThreadLayout.choose(threads: 4, microBatch: 1), ThreadLayout(workers: 1, blasThreads: 4))
        XCTAssertEqual(ThreadLayout.choose(threads: 1, microBatch: 8), ThreadLayout(workers: 1, blasThreads: 1))
    }

    func testWorkersTrainTheModelOneThreadDoes() throws {
        for accumSteps in [1, 2] {
            var config = SmallRun.config()
            config.accumSteps = accumSteps
            let reference = try SmallRun.trained(config, steps: 4, threads: 1)
            // 3 workers share a micro-batch of 8 unevenly (3 + 3 + 2).
            for threads in [2, 3, 4] {
                let parallel = try SmallRun.trained(config, steps: 4, threads: threads)
                XCTAssertEqual(parallel.threadLayout.workers, min(threads, 8 / accumSteps))
                for spec in reference.model.layout.tensors {
                    func values(_ t: Trainer) -> [Double] { spec.range.map { Double(t.model.parameters[$0]) } }
                    XCTAssertLessThan(relativeError(values(reference), values(parallel)), 1e-5,
                                      "\(spec.name), \(threads) threads, \(accumSteps) accumulation step(s)")
                }
            }
        }
    }

    func testTheSameWorkerCountGivesTheSameBits() throws {
        let a = SmallRun.parameters(try SmallRun.trained(SmallRun.config(), steps: 4, threads: 3))
        let b = SmallRun.parameters(try SmallRun.trained(SmallRun.config(), steps: 4, threads: 3))
        XCTAssertEqual(a.withUnsafeBytes { Array($0) }, b.withUnsafeBytes { Array($0) })
    }

    func testDebugModeRunsOneWorkerOnOneThread() throws {
        let trainer = try Trainer(config: SmallRun.config(), corpus: SmallRun.corpus, collective: .local, threads: 4, debug: true)
        XCTAssertEqual(trainer.threadLayout, ThreadLayout(workers: 1, blasThreads: 1))
    }

    /// The evaluation shares its batches among the threads; the sum does not depend on how many.
    func testEvaluationDoesNotDependOnThreads() throws {
        let trainer = try SmallRun.trained(SmallRun.config(), steps: 2)
        let results = try [1, 2, 3].map { threads in
            try Evaluator(model: trainer.model, corpus: SmallRun.corpus, collective: .local, batch: 3, threads: threads)
                .bitsPerByte(.valid, limit: 5000)
        }
        XCTAssertEqual(Set(results).count, 1, "\(results)")
    }
}
