import ArgumentParser
import Foundation
import ReZero

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bits per byte of a checkpoint over a whole split.",
        discussion: "Non-overlapping windows of --seq-len bytes: every byte of the split but its first is scored exactly once, with the bytes before it in its window as context.")

    @Option(help: "Checkpoint file (.safetensors).") var checkpoint: String
    @Option(help: "Split: train, valid, test.") var split: Split = .valid
    @Option(help: "Corpus file (default: the one the checkpoint was trained on).") var data: String?
    @Option(name: .customLong("batch-size"), help: "Windows per forward pass and rank.") var batchSize: Int = 16
    @Option(help: "Score only the split's first N bytes; 0 = all.") var bytes: Int = 0
    @OptionGroup var threads: ThreadOptions
    @Flag(help: "Print the result as JSON.") var json = false

    struct Result: Codable {
        var split: Split, bitsPerByte: Double, bytesScored: Int, checkpoint: String, step: Int, corpus: String
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be at least 1") }
        guard bytes >= 0 else { throw ValidationError("--bytes \(bytes): must be non-negative") }
    }

    func run() throws {
        runJob(threads: threads) { collective in
            let loaded = try Checkpoint.load(path: checkpoint)
            // A checkpoint without a corpus path was trained on the built-in synthetic corpus.
            let corpus = try Corpus.recorded(path: data ?? loaded.config.data)
            try corpus.validate(sequence: 1)
            let model = try loaded.model()
            let start = ContinuousClock.now
            let limit = bytes > 0 ? bytes : nil
            let bpb = try Evaluator(model: model, corpus: corpus, collective: collective, batch: batchSize, threads: BLAS.threads)
                .bitsPerByte(split, limit: limit)
            let scored = corpus.evaluationWindows(split, sequence: model.config.seqLen, limit: limit).reduce(0) { $0 + $1.count }
            if collective.isRoot {
                if json {
                    printJSON(Result(split: split, bitsPerByte: bpb, bytesScored: scored, checkpoint: checkpoint,
                                     step: loaded.state.step, corpus: corpus.name))
                } else {
                    print(String(format: "%@ %@: %.4f bits/byte over %d bytes (checkpoint step %d, %.1f s)",
                                 corpus.name, split.rawValue, bpb, scored, loaded.state.step,
                                 (ContinuousClock.now - start).seconds))
                }
            }
            return .success
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
