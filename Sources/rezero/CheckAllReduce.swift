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

    @Option(help: "Buffer length in floats (default: 1000003).") var count: Int = 1_000_003

    func run() throws {
        let collective: Collective
        do { collective = try Collective(mpi: ()) } catch { fail("cannot start MPI: \(error)") }
        let size = collective.size
        guard size & (size - 1) == 0 else { fail("check-allreduce needs a power-of-two number of ranks, so 1/ranks is exact") }
        // Small integers times a power of two: every partial sum is exact in Float.
        func value(_ rank: Int, _ i: Int) -> Double { Double((rank + 1) * (i % 13 + 1) - 7) }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        for i in 0..<count { buffer[i] = Float(value(collective.rank, i) / Double(size)) }
        do { try collective.allReduceSum(buffer, count: count) } catch { collective.abort("\(error)") }
        var wrong = 0
        for i in 0..<count {
            let expected = (0..<size).reduce(0.0) { $0 + value($1, i) } / Double(size)
            if Double(buffer[i]) != expected { wrong += 1 }
        }
        var totals = [Double(wrong)]
        try collective.allReduce(&totals, .sum)
        if collective.isRoot { print("all-reduce over \(size) rank(s) of \(count) floats: \(Int(totals[0])) wrong") }
        collective.finalize()
        if totals[0] > 0 { throw ExitCode(1) }
    }
}
