import ArgumentParser
import Foundation
import ReZero

/// Run under mpirun by the tests: every rank fills a gradient-sized buffer with known values,
/// pre-scaled by 1/ranks as the trainer's loss scale does, and checks the all-reduced result
/// against the exact mean.
struct CheckAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-allreduce", abstract: "Check the gradient all-reduce against exact values (for tests).",
        shouldDisplay: false)

    @Option(help: "Buffer length in floats.") var count: Int = 1_000_003
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        runJob(threads: threads) { collective in
            let size = collective.size
            guard size & (size - 1) == 0 else {
                throw RezeroError.usage("check-allreduce needs a power-of-two number of ranks, so 1/ranks is exact")
            }
            // Small integers times a power of two: every partial sum is exact in Float.
            func value(_ rank: Int, _ i: Int) -> Double { Double((rank + 1) * (i % 13 + 1) - 7) }
            var buffer = (0..<count).map { Float(value(collective.rank, $0) / Double(size)) }
            try collective.allReduceSum(&buffer, count: count)
            let wrong = buffer.indices.filter { i in
                Double(buffer[i]) != (0..<size).reduce(0.0) { $0 + value($1, i) } / Double(size)
            }.count
            var totals = [Double(wrong)]
            try collective.allReduce(&totals, .sum)
            if collective.isRoot { print("all-reduce over \(size) rank(s) of \(count) floats: \(Int(totals[0])) wrong") }
            return totals[0] > 0 ? .failure : .success
        }
    }
}
