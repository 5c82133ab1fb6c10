import ArgumentParser
import Foundation
import ReZero

/// Run under mpirun by the tests: every rank fills a gradient-sized buffer with known values,
/// pre-scaled by 1/ranks as the trainer's loss scale does, and checks the all-reduced result
/// against the exact mean; then rank 0's buffer is broadcast, as parameters are at start.
struct CheckAllReduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-allreduce", abstract: "Check the gradient all-reduce and the broadcast against exact values (for tests).",
        shouldDisplay: false)

    @Option(help: "Buffer length in floats.") var count: Int = 1_000_003
    @Option(help: "Most elements per MPI call (default: 2^31 - 1, MPI's limit); smaller values test the splitting of long buffers.") var chunk: Int?
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let chunk, chunk < 1 { throw ValidationError("--chunk \(chunk): must be at least 1") }
    }

    func run() throws {
        runJob(threads: threads) { collective in
            let size = collective.size
            guard size & (size - 1) == 0 else {
                throw RezeroError.usage("check-allreduce needs a power-of-two number of ranks, so 1/ranks is exact")
            }
            if let chunk { collective.chunk = chunk }
            // Small integers times a power of two: every partial sum is exact in Float.
            func value(_ rank: Int, _ i: Int) -> Double { Double((rank + 1) * (i % 13 + 1) - 7) }
            var buffer = (0..<count).map { Float(value(collective.rank, $0) / Double(size)) }
            let callsBefore = collective.chunkCalls
            try collective.allReduceSum(&buffer, count: count)
            let sumCalls = collective.chunkCalls - callsBefore
            let wrongSums = buffer.indices.filter { i in
                Double(buffer[i]) != (0..<size).reduce(0.0) { $0 + value($1, i) } / Double(size)
            }.count
            var broadcast = collective.isRoot ? (0..<count).map { Float(value(0, $0)) } : [Float](repeating: 0, count: count)
            try broadcast.withUnsafeMutableBytes { try collective.broadcast($0.baseAddress!, bytes: $0.count) }
            let broadcastCalls = collective.chunkCalls - callsBefore - sumCalls
            let wrongCopies = broadcast.indices.filter { Double(broadcast[$0]) != value(0, $0) }.count
            var totals = [Double(wrongSums), Double(wrongCopies)]
            try collective.allReduce(&totals, .sum)
            if collective.isRoot {
                print("all-reduce over \(size) rank(s) of \(count) floats in \(sumCalls) MPI call(s): \(Int(totals[0])) wrong")
                print("broadcast to \(size) rank(s) of \(count * 4) bytes in \(broadcastCalls) MPI call(s) of at most \(collective.chunk): \(Int(totals[1])) wrong")
            }
            return totals[0] + totals[1] > 0 ? .failure : .success
        }
    }
}
