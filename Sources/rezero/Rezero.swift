import ArgumentParser
import Foundation
import ReZero

@main
struct Rezero: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rezero",
        abstract: "Data-parallel trainer for byte-level ReZero Transformers (BLAS + MPI).",
        discussion: """
        Run under mpirun for data parallelism; started without mpirun it is a one-rank job.
        Examples:
          rezero train --steps 500                       # built-in synthetic corpus
          rezero train --data data/enwik8 --run-dir runs/e8
          mpirun -np 2 rezero train --threads 1 --data data/enwik8
          rezero eval --checkpoint runs/e8/ckpt-00002000.safetensors --split test
        """,
        subcommands: [Train.self, Eval.self, Sample.self, GradCheck.self, Bench.self, Inspect.self, Compare.self, CheckAllReduce.self, Plot.self],
        defaultSubcommand: nil)

    /// `--resume` may stand alone (latest checkpoint of --run-dir) or take a path; the parser
    /// wants a value, so a bare `--resume` becomes `--resume latest`.
    static func normalizedArguments(_ arguments: [String]) -> [String] {
        var out: [String] = []
        for (i, argument) in arguments.enumerated() {
            out.append(argument)
            if argument == "--resume" && (i + 1 == arguments.count || arguments[i + 1].hasPrefix("-")) {
                out.append(Train.latestCheckpoint)
            }
        }
        return out
    }

    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        main(normalizedArguments(Array(CommandLine.arguments.dropFirst())))
    }
}

/// Errors a user caused: printed as `error: …`, exit status 2.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(2)
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try! encoder.encode(value), as: UTF8.self))
}
