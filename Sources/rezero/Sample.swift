import ArgumentParser
import Foundation
import ReZero

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a checkpoint.")

    @Option(help: "Checkpoint file (.safetensors).") var checkpoint: String?
    @Option(name: .customLong("run-dir"), help: "Use the newest valid checkpoint of this run directory (e.g. the end of training).") var runDir: String?
    @Option(help: "Text the generation continues (default: a newline).") var prompt: String = ""
    @Option(help: "Bytes to generate.") var length: Int = 300
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Double = 0.8
    @Option(help: "Sampling seed.") var seed: UInt64 = 1
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard length >= 1 else { throw ValidationError("--length \(length): must be at least 1") }
        guard temperature >= 0 else { throw ValidationError("--temperature \(temperature): must be non-negative") }
        guard (checkpoint == nil) != (runDir == nil) else { throw ValidationError("give either --checkpoint FILE or --run-dir DIR") }
    }

    func run() throws {
        runJob(threads: threads) { _ in
            let loaded = if let checkpoint {
                try Checkpoint.load(path: checkpoint)
            } else {
                try CheckpointDirectory(runDir!).latestValid { printError($0) }
            }
            let model = try loaded.model(batch: 1)
            let bytes = try Sampler.generate(model: model, prompt: Array(prompt.utf8), count: length,
                                             temperature: temperature, seed: seed)
            print(prompt + String(decoding: bytes, as: UTF8.self))
            return .success
        }
    }
}
