import Foundation
import XCTest
@testable import ReZero
import TestSupport

/// The kernels make no heap allocation per call. A process cannot count its own mallocs without an
/// interposed allocator, so this test runs itself again — this test alone, in a child process of
/// the same test bundle — with the counter `rezero bench` uses (launch/bench-counters.c) preloaded,
/// and the child counts the mallocs each kernel call makes on its own thread: BLAS runs on the
/// caller's thread at one thread, while the test runner's other threads may allocate meanwhile (a
/// CI run once saw one such stray allocation when the whole process was counted). The whole
/// training step is checked the same way through `rezero bench` in SystemTests.
final class AllocationTests: XCTestCase {
    static let childVariable = "REZERO_ALLOCATION_TEST_CHILD"

    /// Every kernel on the caller's thread (BLAS at one thread), as the workers run them.
    func testKernelsMakeNoHeapAllocations() throws {
        try countInChild { kernels() }
    }

    /// In the parent: runs `test` alone in a child process of this test bundle with the counter
    /// preloaded, and fails with the child's output if the child fails. In the child: calls each
    /// kernel once to warm up, then counts the mallocs of 3 more calls, which must be 0.
    func countInChild(test: String = #function, _ kernels: () -> [(String, () -> Void)]) throws {
        #if !os(Linux)
        throw XCTSkip("the counter is preloaded with LD_PRELOAD (Linux)")
        #endif
        if Benchmark.Counters.read() != nil { return count(kernels()) }
        guard ProcessInfo.processInfo.environment[Self.childVariable] == nil else {
            return XCTFail("launch/bench-counters.c is not preloaded in the child")
        }
        let dir = Paths.temporaryDirectory("kernel-allocations")
        let compile = try runProcess("/usr/bin/env", ["cc", "-O2", "-shared", "-fPIC", "-o", dir + "/counters.so",
                                                      Paths.launch("bench-counters.c"), "-ldl"])
        guard compile.status == 0 else { throw XCTSkip("no C compiler to build the malloc counter: \(compile.stderr)") }
        let name = "ReZeroTests.AllocationTests/" + test.prefix { $0 != "(" }
        let child = try runProcess(CommandLine.arguments[0], [name],
                                   environment: ["LD_PRELOAD": dir + "/counters.so", Self.childVariable: "1"])
        let counts = child.stdout.split(separator: "\n").filter { $0.hasPrefix("allocations") }
        print(counts.joined(separator: "\n"))
        XCTAssertFalse(counts.isEmpty, child.stdout + child.stderr)
        XCTAssertEqual(child.status, 0, child.stdout.split(separator: "\n").filter { $0.contains("error") }.joined(separator: "\n"))
    }

    func count(_ kernels: [(String, () -> Void)]) {
        func allocations(_ name: String, _ body: () -> Void) -> Int {
            body()
            let before = Benchmark.Counters.threadMallocCalls()!
            for _ in 0..<3 { body() }
            let count = Benchmark.Counters.threadMallocCalls()! - before
            print("allocations in 3 calls: \(name) \(count)")
            return count
        }
        // The counter sees an allocation, and reading it allocates nothing.
        let sink = Buffer<Float>(zeros: 1)
        XCTAssertGreaterThanOrEqual(allocations("control: a new Buffer") { sink.pointer[0] += Float(Buffer<Float>(zeros: 1).count) }, 3)
        XCTAssertEqual(allocations("control: nothing") {}, 0)
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        // OpenBLAS 0.3.21's sgemm allocates once per call when it runs threaded (measured: a
        // 512×512 product at 2 threads does, a 64×64 one does not): outside our code.
        BLAS.threads = 1
        for (name, body) in kernels { XCTAssertEqual(allocations(name, body), 0, name) }
    }

    func kernels() -> [(String, () -> Void)] {
        let rows = 64, width = 64, classes = 256
        let x = Buffer<Float>(rows * width, seed: 1), y = Buffer<Float>(zeros: rows * width), dy = Buffer<Float>(rows * width, seed: 2)
        let weight = Buffer<Float>(width * width, seed: 3), bias = Buffer<Float>(width, seed: 4)
        let dWeight = Buffer<Float>(zeros: width * width), dBias = Buffer<Float>(zeros: width)
        let mean = Buffer<Float>(zeros: rows), rstd = Buffer<Float>(zeros: rows), losses = Buffer<Float>(zeros: rows)
        let logits = Buffer<Float>(rows * classes, seed: 5), dLogits = Buffer<Float>(zeros: rows * classes)
        let targets = (0..<rows).map { UInt8($0 * 3) }, sink = Buffer<Float>(zeros: 1)
        let dropout = Dropout(rate: 0.1, seed: 1, step: 1, layer: 0)
        var kernels: [(String, () -> Void)] = [
            ("sum, inner product, maximum", {
                sink.pointer[0] = Float.sum(x.pointer, count: x.count) + Float.innerProduct(x.pointer, dy.pointer, count: x.count)
                    + Float.maximum(x.pointer, count: x.count)
            }),
            ("Linear", {
                Linear.forward(y.pointer, x.pointer, weight: weight.pointer, bias: bias.pointer, rows: rows, inputs: width, outputs: width)
                Linear.backward(dx: y.pointer, accumulateInput: true, dWeight: dWeight.pointer, dBias: dBias.pointer, dy: dy.pointer,
                                x: x.pointer, weight: weight.pointer, rows: rows, inputs: width, outputs: width)
            }),
            ("Residual", {
                Residual.forward(y.pointer, x.pointer, branch: dy.pointer, alpha: 0.5, count: x.count)
                sink.pointer[0] = Residual.backward(dBranch: y.pointer, dy: dy.pointer, branch: x.pointer, alpha: 0.5, count: x.count)
            }),
            ("LayerNorm", {
                LayerNorm.forward(y.pointer, mean: mean.pointer, rstd: rstd.pointer, x.pointer, weight: bias.pointer,
                                  bias: bias.pointer, rows: rows, width: width)
                LayerNorm.backward(dx: y.pointer, accumulateInput: false, dWeight: dWeight.pointer, dBias: dBias.pointer,
                                   dy: dy.pointer, x: x.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                   weight: bias.pointer, rows: rows, width: width)
            }),
            ("Softmax", {
                y.pointer.update(from: x.pointer, count: width)
                Softmax.row(y.pointer, count: width)
                Softmax.rowBackward(dWeight.pointer, probabilities: y.pointer, count: width)
            }),
            ("CrossEntropy", {
                dLogits.pointer.update(from: logits.pointer, count: logits.count)
                sink.pointer[0] = Float(CrossEntropy.forward(dLogits.pointer, losses: losses.pointer, targets: targets,
                                                             rows: rows, classes: classes))
                CrossEntropy.backward(dLogits: dLogits.pointer, probabilities: dLogits.pointer, targets: targets, rows: rows,
                                      classes: classes, scale: 1 / Float(rows))
            }),
            ("Dropout", {
                dropout.apply(y.pointer, x.pointer, site: .activation, batch: 4, sequence: rows / 4, width: width)
                dropout.apply(y.pointer, y.pointer, site: .activation, batch: 4, sequence: rows / 4, width: width)
                dropout.fill(dWeight.pointer, row: dropout.row(.attention, sequence: 1, head: 1, position: 9), from: 3, count: width)
            }),
        ]
        for kind in ActivationKind.allCases {
            kernels.append(("Activation \(kind)", {
                Activation.forward(kind, y.pointer, x.pointer, count: x.count)
                Activation.backward(kind, y.pointer, x.pointer, count: x.count)
            }))
        }
        return kernels + attentionKernels()
    }

    /// Forward and backward, both paths, without and with dropout.
    func attentionKernels() -> [(String, () -> Void)] {
        Attention.Path.allCases.flatMap { path in
            [0, 0.1].map { rate in
                let shape = Attention.Shape(batch: 2, sequence: 100, width: 32, heads: 2, block: 32, keyBlock: 48, path: path)
                let n = 2 * 100
                let qkv = Buffer<Float>(n * 96, seed: 6), out = Buffer<Float>(zeros: n * 32), dOut = Buffer<Float>(n * 32, seed: 7)
                let lse = Buffer<Float>(zeros: Attention.logSumExpCount(shape)), dqkv = Buffer<Float>(zeros: qkv.count)
                let scratch = Buffer<Float>(zeros: Attention.scratchCount(shape))
                let dropout = Dropout(rate: rate, seed: 2, step: 3, layer: 1)
                return ("Attention \(path), dropout \(rate)", {
                    Attention.forward(out.pointer, logSumExp: lse.pointer, qkv: qkv.pointer, scratch: scratch.pointer,
                                      shape: shape, dropout: dropout)
                    Attention.backward(dqkv: dqkv.pointer, dOut: dOut.pointer, out: out.pointer, qkv: qkv.pointer,
                                       logSumExp: lse.pointer, scratch: scratch.pointer, shape: shape, dropout: dropout)
                })
            }
        }
    }
}
