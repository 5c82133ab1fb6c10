import Foundation
import ReZero

/// How every MPI subcommand runs: start MPI (without mpirun, a one-rank job), set the BLAS
/// threads, run `body` on every rank, and end the process with the status `body` returns or its
/// error maps to — the same status on one rank and on N, where MPI_Abort carries it to mpirun.
func runJob(threads: ThreadOptions, collectiveTimeout: Double? = nil, debug: Bool = false,
            _ body: (Collective) throws -> ExitStatus) -> Never {
    let collective: Collective
    do {
        collective = try Collective(mpi: (), collectiveTimeout: collectiveTimeout)
    } catch {
        printError("error: cannot start MPI: \(error)")
        exit(ExitStatus.failure.rawValue)
    }
    threads.configure(collective, debug: debug)
    do {
        let status = try body(collective)
        try collective.finalize()
        exit(status.rawValue)
    } catch {
        collective.abort("error: \(error)", status: ExitStatus(for: error))
    }
}

/// Prints on rank 0 only.
func rootPrinter(_ collective: Collective) -> (String) -> Void {
    { if collective.isRoot { print($0) } }
}

/// Encodes a result for `--json` in the files' dialect (snake_case keys).
func printJSON<T: Encodable>(_ value: T) {
    print(JSONCoding.string(value, pretty: true))
}
