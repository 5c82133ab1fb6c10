import ArgumentParser
import Foundation
import ReZero

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a checkpoint: config, step, α per layer, tensor table.")

    @Argument(help: "Checkpoint file (.safetensors).") var file: String
    @Option(help: "Also print every value of this tensor, one per line (%.9g).") var values: String?

    func run() throws {
        let loaded = try Checkpoint.load(path: file)
        print("checkpoint \(file)")
        print("step \(loaded.state.step), tokens seen \(loaded.state.tokensSeen), saved by \(loaded.state.worldSize) rank(s), optimizer updates \(loaded.optimizerUpdates)")
        if let best = loaded.state.bestValidBpb { print(String(format: "best valid bits/byte %.4f", best)) }
        print("config \(loaded.config.json(pretty: true))")
        for (l, spec) in ParameterLayout(loaded.config.model).tensors.filter({ $0.role == .alpha }).enumerated() {
            print(String(format: "layers.%d.alpha = %.9g", l, loaded.file.values(spec.name)![0]))
        }
        print("tensors:")
        for entry in loaded.file.entries {
            let v = loaded.file.values(entry.name)!
            let mean = v.reduce(0.0) { $0 + Double($1) } / Double(max(v.count, 1))
            let rms = (v.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(v.count, 1))).squareRoot()
            print(String(format: "  %-36@ F32 %-12@ mean %+.6e  rms %.6e", entry.name as NSString,
                         "\(entry.shape)" as NSString, mean, rms))
        }
        if let values {
            guard let v = loaded.file.values(values) else {
                throw RezeroError.usage("--values \(values): no such tensor in \(file)")
            }
            print("values of \(values):")
            for x in v { print(String(format: "%.9g", x)) }
        }
    }
}
