import ArgumentParser
import Foundation
import ReZero

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bits per byte of a checkpoint over a whole split.",
        discussion: "Non-overlapping windows of --seq-len bytes: every byte of the split but its first is scored exactly once, with the bytes before it in its window as context.")

    @Option(help: "Checkpoint file (.safetensors).") var checkpoint: String
    @Option(help: "Split: train, valid, test (default: valid).") var split: Split = .valid
    @Option(help: "Corpus file (default: the one the checkpoint was trained on).") var data: String?
    @Option(name: .customLong("batch-size"), help: "Windows per forward pass and rank (default: 16).") var batchSize: Int = 16
    @Option(help: "Score only the split's first N bytes; 0 = all (default: 0).") var bytes: Int = 0
    @OptionGroup var threads: ThreadOptions
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        guard batchSize >= 1 else { fail("--batch-size \(batchSize): must be at least 1") }
        guard bytes >= 0 else { fail("--bytes \(bytes): must be non-negative") }
        let loaded = loadCheckpoint(checkpoint, flag: "--checkpoint")
        let collective: Collective
        do { collective = try Collective(mpi: ()) } catch { fail("cannot start MPI: \(error)") }
        threads.configure(collective)
        // A checkpoint without a corpus path was trained on the built-in synthetic corpus.
        let corpus = data == nil && loaded.config.data == nil
            ? SyntheticSource.standard.corpus() : loadCorpus(data ?? loaded.config.data)
        do { try corpus.validate(sequence: 1) } catch { fail("\(error)") }
        let model = Model<Float>(config: loaded.config.model, seed: loaded.config.seed)
        do {
            try loaded.restore(parameters: model.parameters, layout: model.layout, optimizer: nil)
            let start = Date()
            let bpb = try Evaluator(model: model, corpus: corpus, collective: collective, batch: batchSize)
                .bitsPerByte(split, limit: bytes > 0 ? bytes : nil)
            let scored = corpus.evaluationWindows(split, sequence: model.config.seqLen, limit: bytes > 0 ? bytes : nil)
                .reduce(0) { $0 + $1.count }
            if collective.isRoot {
                if json {
                    printJSON(["split": split.rawValue, "bits_per_byte": String(bpb), "bytes_scored": String(scored),
                               "checkpoint": checkpoint, "step": String(loaded.state.step), "corpus": corpus.name])
                } else {
                    print(String(format: "%@ %@: %.4f bits/byte over %d bytes (checkpoint step %d, %.1f s)",
                                 corpus.name, split.rawValue, bpb, scored, loaded.state.step, Date().timeIntervalSince(start)))
                }
            }
            collective.finalize()
        } catch {
            if collective.size > 1 { collective.abort("error: \(error)") }
            fail("\(error)")
        }
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a checkpoint.")

    @Option(help: "Checkpoint file (.safetensors).") var checkpoint: String?
    @Option(name: .customLong("run-dir"), help: "Use the newest valid checkpoint of this run directory (e.g. the end of training).") var runDir: String?
    @Option(help: "Text the generation continues (default: a newline).") var prompt: String = ""
    @Option(help: "Bytes to generate (default: 300).") var length: Int = 300
    @Option(help: "Sampling temperature; 0 = greedy (default: 0.8).") var temperature: Double = 0.8
    @Option(help: "Sampling seed (default: 1).") var seed: UInt64 = 1

    func run() throws {
        guard length >= 1 else { fail("--length \(length): must be at least 1") }
        guard temperature >= 0 else { fail("--temperature \(temperature): must be non-negative") }
        let loaded: Checkpoint.Loaded
        if let checkpoint {
            loaded = loadCheckpoint(checkpoint, flag: "--checkpoint")
        } else if let runDir {
            do { loaded = try CheckpointDirectory(runDir).latestValid(warn: { print($0) }) } catch { fail("--run-dir \(runDir): \(error)") }
        } else {
            fail("give --checkpoint FILE or --run-dir DIR")
        }
        BLAS.threads = 1
        let model = Model<Float>(config: loaded.config.model, seed: loaded.config.seed)
        do {
            try loaded.restore(parameters: model.parameters, layout: model.layout, optimizer: nil)
            let bytes = try Sampler.generate(model: model, prompt: Array(prompt.utf8), count: length,
                                             temperature: temperature, seed: seed)
            print(prompt + String(decoding: bytes, as: UTF8.self))
        } catch {
            fail("\(error)")
        }
    }
}
