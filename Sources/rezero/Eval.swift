import ArgumentParser
import Foundation
import ReZero

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bits per byte of a checkpoint over a whole split.",
        discussion: "Windows of --seq-len bytes overlapping by --eval-context C bytes, which serve only as context: each window after the first scores its last --seq-len − C predictions, so every byte of the split but its first is scored exactly once, with the bytes before it in its window as context (at least C + 1 of them outside the first window). C = 0: non-overlapping windows.")

    @Option(help: "Checkpoint file (.safetensors).") var checkpoint: String
    @Option(help: "Split: train, valid, test.") var split: Split = .valid
    @Option(help: "Corpus file (default: the one the checkpoint was trained on).") var data: String?
    @Option(name: .customLong("batch-size"), help: "Windows per forward pass and rank.") var batchSize: Int = 16
    @Option(help: "Score only the split's first N bytes; 0 = all.") var bytes: Int = 0
    @Option(name: .customLong("eval-context"), help: "Bytes by which consecutive windows overlap, read as context only; at least 0 and less than the model's --seq-len.") var evalContext: Int = 0
    @OptionGroup var threads: ThreadOptions
    @Flag(help: "Print the result as JSON.") var json = false

    struct Result: Codable {
        var split: Split, bitsPerByte: Double, bytesScored: Int, evalContext: Int, checkpoint: String, step: Int, corpus: String
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be at least 1") }
        guard batchSize <= TrainingConfig.maximumBatch else {
            throw ValidationError("--batch-size \(batchSize): must be at most \(TrainingConfig.maximumBatch)")
        }
        guard bytes == 0 || bytes >= 2 else {
            throw ValidationError("--bytes \(bytes): must be 0 (the whole split) or at least 2 (a scored byte needs one before it)")
        }
        guard evalContext >= 0 else { throw ValidationError("--eval-context \(evalContext): must be at least 0") }
    }

    func run() throws {
        runJob(threads: threads) { collective in
            let loaded = try Checkpoint.load(path: checkpoint)
            // A checkpoint without a corpus path was trained on the built-in synthetic corpus.
            let corpus = try Corpus.recorded(path: data ?? loaded.config.data)
            try corpus.validate(sequence: 1)
            try Corpus.validate(evalContext: evalContext, sequence: loaded.config.model.seqLen)
            let model = try loaded.model(batch: batchSize)
            let start = ContinuousClock.now
            let limit = bytes > 0 ? bytes : nil
            let evaluator = Evaluator(model: model, corpus: corpus, collective: collective, batch: batchSize,
                                      context: evalContext, threads: threads.count(collective))
            let bpb = try evaluator.bitsPerByte(split, limit: limit)
            let scored = evaluator.windows(split, limit: limit).reduce(0) { $0 + $1.scored }
            if collective.isRoot {
                if json {
                    printJSON(Result(split: split, bitsPerByte: bpb, bytesScored: scored, evalContext: evalContext,
                                     checkpoint: checkpoint, step: loaded.state.step, corpus: corpus.name))
                } else {
                    print(String(format: "%@ %@: %.4f bits/byte over %d bytes, eval context %d (checkpoint step %d, %.1f s)",
                                 corpus.name, split.rawValue, bpb, scored, evalContext, loaded.state.step,
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
