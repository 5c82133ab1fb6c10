/// How a `rezero` process ends. The status is the same whether the job ran on one rank or on N
/// (under MPI it travels through `MPI_Abort`), so launchers can act on it: `launch/run
/// --max-restarts` retries a runtime failure or a stalled job but not bad input or divergence.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Done, or stopped by a signal after writing its checkpoint.
    case success = 0
    /// A runtime failure: I/O (a checkpoint, metrics line or other file that could not be
    /// written), MPI, replicas drifting apart.
    case failure = 1
    /// Bad input: a flag, file or value (flags the argument parser rejects included).
    case usage = 2
    /// Training diverged (a non-finite loss, gradient or parameter, or a loss that stays above its start).
    case diverged = 3
    /// A collective made no progress for --collective-timeout seconds (a rank stopped, hung or
    /// unreachable): the watchdog aborted the job, naming the rank and the collective.
    case stalled = 4

    /// One line per status, for `--help` and the README.
    public static let summary = """
        Exit status: 0 done (or stopped by a signal after checkpointing), 1 runtime failure \
        (I/O — something was not written —, MPI, replica drift; worth a restart), 2 bad flag, file \
        or value (the message names it), 3 diverged, 4 a collective stalled (a rank stopped \
        responding; worth a restart) — the same on one rank and on N.
        """
}

/// An error that knows its exit status and says what went wrong in the user's terms (the flag,
/// file or value).
public struct RezeroError: Error, CustomStringConvertible, Equatable, Sendable {
    public let status: ExitStatus
    public let description: String

    public init(_ status: ExitStatus, _ description: String) {
        self.status = status
        self.description = description
    }

    /// Bad input: the message names the flag, file or value.
    public static func usage(_ message: String) -> RezeroError { RezeroError(.usage, message) }
    /// Something failed while running.
    public static func failure(_ message: String) -> RezeroError { RezeroError(.failure, message) }
}

extension ExitStatus {
    /// The status an error ends the process with.
    public init(for error: Error) {
        switch error {
        case let error as RezeroError: self = error.status
        case is SafeTensors.FormatError: self = .usage
        case is NonFiniteValue: self = .diverged
        default: self = .failure
        }
    }
}

/// Throws a usage error "FLAG VALUE: MESSAGE" unless `condition` holds.
func require(_ condition: Bool, _ flag: String, _ value: Any, _ message: String) throws(RezeroError) {
    if !condition { throw .usage("\(flag) \(value): \(message)") }
}
