import ArgumentParser
@preconcurrency import Glibc
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
        \(ExitStatus.summary)
        """,
        subcommands: [Train.self, Eval.self, Sample.self, GradCheck.self, Bench.self, Inspect.self, Compare.self,
                      Plot.self, CheckAllReduce.self])

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
        // Line-buffered even into a pipe or file, so a log shows each step as it happens.
        setvbuf(stdout, nil, _IOLBF, 0)
        // A file-size limit (ulimit -f) must fail the write with EFBIG, to be reported like a
        // full disk, rather than kill the process; mpirun resets inherited dispositions, so the
        // rank sets its own.
        signal(SIGXFSZ, SIG_IGN)
        do {
            var command = try parseAsRoot(normalizedArguments(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            let code = exitCode(for: error)
            // Help and version requests, and explicit exit codes, go the parser's way.
            if code == .success || error is ExitCode { exit(withError: error) }
            // The parser's rejections are bad input like any other: 2, not ArgumentParser's 64.
            let message = code == .validationFailure ? fullMessage(for: error) : "error: \(error)"
            if launchedAsRankZero { printError(message) }
            Foundation.exit(code == .validationFailure ? ExitStatus.usage.rawValue : ExitStatus(for: error).rawValue)
        }
    }

    /// Every rank of an mpirun or srun job parses the same arguments; one copy of a message is enough.
    static var launchedAsRankZero: Bool {
        let environment = ProcessInfo.processInfo.environment
        let rank = ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"].lazy.compactMap { environment[$0] }.first
        return rank.flatMap(Int.init).map { $0 == 0 } ?? true
    }
}
