import CMPI
import Dispatch
import Foundation

/// Turns a hang into a diagnosis. A rank waits for a collective by polling it; when the wait has
/// lasted `timeout` seconds, the rank probes every other rank with a message that ranks answer
/// whenever they wait (or, on rank 0, while a checkpoint is being written). A rank that does not
/// answer within the probe window is stopped, hung or unreachable: the job is aborted with exit
/// status 4 (`ExitStatus.stalled`), naming that rank and the collective, so that `launch/run
/// --max-restarts` restarts it. If every rank answers and all of them are waiting, the
/// collectives are deadlocked, which ends the same way; if one is busy, the wait goes on.
public final class Watchdog {
    /// The automatic timeout before any step was timed; afterwards 20 × the slowest step, if longer.
    public static let defaultTimeout = 300.0

    /// What a rank is waiting in, for messages.
    enum Operation: Int32, Sendable {
        case gradientSum, reduction, broadcast, barrier
        /// Not a collective: rank 0 writing a checkpoint while the others wait for it.
        case busy

        var description: String {
            switch self {
            case .gradientSum: return "the gradient all-reduce (MPI_Iallreduce)"
            case .reduction: return "an all-reduce of scalars (MPI_Iallreduce)"
            case .broadcast: return "a broadcast (MPI_Ibcast)"
            case .barrier: return "a barrier (MPI_Ibarrier)"
            case .busy: return "writing a checkpoint"
            }
        }
    }

    /// Where the job is, for messages: a phase ("step", "start-up", …) and its step.
    var phase: StaticString = "start-up"
    var step = 0
    /// Seconds a wait may last before the ranks are probed.
    private(set) var timeout: Double
    private let automatic: Bool
    private var slowestStep = 0.0
    /// Prints the message and ends every rank of the job with `ExitStatus.stalled`.
    private let abort: (String) -> Never

    private let communicator: MPI_Comm
    private let rank: Int, size: Int
    private static let probeTag: Int32 = 1, answerTag: Int32 = 2
    /// Message buffers that must stay put while MPI sends or receives them: per rank, the probe
    /// number sent, and the answer received [probe number, operation].
    private let outgoing: UnsafeMutablePointer<Int32>, answers: UnsafeMutablePointer<Int32>
    private var probeNumber: Int32 = 0

    init(communicator: MPI_Comm, rank: Int, size: Int, timeout: Double?, abort: @escaping (String) -> Never) {
        self.communicator = communicator
        self.abort = abort
        self.rank = rank
        self.size = size
        self.timeout = timeout ?? Self.defaultTimeout
        automatic = timeout == nil
        outgoing = .allocate(capacity: size)
        answers = .allocate(capacity: 2 * size)
    }

    deinit {
        outgoing.deallocate()
        answers.deallocate()
    }

    /// The probe window: long enough for a rank between two waits to reach the next one.
    var window: Double { Swift.max(2, timeout / 4) }

    /// With the automatic timeout, makes room for slow steps: 20 × the slowest step so far.
    func observe(stepSeconds: Double) {
        guard automatic, stepSeconds > slowestStep else { return }
        slowestStep = stepSeconds
        timeout = Swift.max(Self.defaultTimeout, 20 * stepSeconds)
    }

    /// Polls `requests` to completion, answering other ranks' probes meanwhile; probes the ranks
    /// each time the wait has lasted `timeout` seconds, and aborts the job if one does not answer.
    func wait(_ requests: inout [MPI_Request?], _ operation: Operation) throws {
        let start = Self.now()
        var lastAnswer = start, nextProbe = start + timeout, reported = false
        while true {
            if try Self.complete(&requests) { return }
            let now = Self.now()
            if now - lastAnswer > 0.01 {
                try answerProbes(operation)
                lastAnswer = now
            }
            guard now > nextProbe else { continue }
            switch try probe(&requests, operation, waited: now - start) {
            case .completed:
                return
            case .busy(let r):
                if !reported {
                    printError("[rank \(rank)] collective watchdog: \(here(operation)) has waited \(Int(now - start)) s; rank \(r) is \(Operation.busy.description), waiting on")
                    reported = true
                }
            }
            nextProbe = Self.now() + timeout
        }
    }

    private func here(_ operation: Operation) -> String { "\(operation.description) in \(phase) \(step)" }

    /// Runs `work` on another thread while this one answers probes as busy.
    func answeringProbes<T>(while work: () throws -> T) throws -> T {
        try withoutActuallyEscaping(work) { work in
            let job = BackgroundJob(work)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                job.run()
                done.signal()
            }
            while done.wait(timeout: .now() + .milliseconds(10)) == .timedOut {
                try answerProbes(.busy)
            }
            return try job.take()
        }
    }

    // MARK: Probes

    /// Answers every probe that has arrived, saying what this rank is waiting in (or busy with).
    private func answerProbes(_ state: Operation) throws {
        while true {
            var arrived: Int32 = 0
            var status = MPI_Status()
            try Collective.check("MPI_Iprobe", MPI_Iprobe(MPI_ANY_SOURCE, Self.probeTag, communicator, &arrived, &status))
            guard arrived != 0 else { return }
            var message: [Int32] = [0, 0]
            try Collective.check("MPI_Recv", MPI_Recv(&message, 1, rezero_mpi_int(), status.MPI_SOURCE, Self.probeTag,
                                                      communicator, rezero_mpi_status_ignore()))
            message[1] = state.rawValue
            try Collective.check("MPI_Send", MPI_Send(&message, 2, rezero_mpi_int(), status.MPI_SOURCE, Self.answerTag,
                                                      communicator))
        }
    }

    private enum ProbeOutcome { case completed, busy(Int) }

    /// Asks every other rank what it is doing and waits one window for the answers (or for
    /// `requests` to complete). Aborts unless some rank is busy rather than waiting.
    private func probe(_ requests: inout [MPI_Request?], _ operation: Operation, waited: Double) throws -> ProbeOutcome {
        probeNumber &+= 1
        let others = (0..<size).filter { $0 != rank }
        var sends = [MPI_Request?](repeating: nil, count: size), receives = sends
        var answered = [Operation?](repeating: nil, count: size)
        func listen(_ r: Int) throws {
            try Collective.check("MPI_Irecv", MPI_Irecv(answers + 2 * r, 2, rezero_mpi_int(), Int32(r), Self.answerTag,
                                                        communicator, &receives[r]))
        }
        for r in others {
            outgoing[r] = probeNumber
            try Collective.check("MPI_Isend", MPI_Isend(outgoing + r, 1, rezero_mpi_int(), Int32(r), Self.probeTag,
                                                        communicator, &sends[r]))
            try listen(r)
        }
        defer {
            for r in others {
                if receives[r] != nil {
                    MPI_Cancel(&receives[r])
                    MPI_Wait(&receives[r], rezero_mpi_status_ignore())
                }
                if sends[r] != nil { MPI_Request_free(&sends[r]) }
            }
        }
        // Once all have answered and one is busy, the wait goes on. Otherwise wait out the whole
        // window even when all have answered: a rank that has just arrived answers "waiting", and
        // the collective then completes within it.
        let deadline = Self.now() + window
        while Self.now() < deadline {
            if try Self.complete(&requests) { return .completed }
            try answerProbes(operation)
            for r in others where answered[r] == nil {
                var arrived: Int32 = 0
                try Collective.check("MPI_Test", MPI_Test(&receives[r], &arrived, rezero_mpi_status_ignore()))
                guard arrived != 0 else { continue }
                if answers[2 * r] == probeNumber {
                    answered[r] = Operation(rawValue: answers[2 * r + 1]) ?? .reduction
                } else {
                    try listen(r)  // the late answer to an earlier probe
                }
            }
            if others.allSatisfy({ answered[$0] != nil }), let busy = others.first(where: { answered[$0] == .busy }) {
                return .busy(busy)
            }
        }
        let here = here(operation)
        let silent = others.filter { answered[$0] == nil }
        if !silent.isEmpty {
            let ranks = silent.map(String.init).joined(separator: ", ")
            abort(String(format: "collective watchdog: %@ made no progress for %.0f s; rank(s) %@ did not answer within %.0f s (stopped, hung or unreachable). Aborting the job (exit status %d); --collective-timeout sets the wait.",
                         here, waited, ranks, window, ExitStatus.stalled.rawValue))
        }
        if let busy = others.first(where: { answered[$0] == .busy }) { return .busy(busy) }
        let states = others.map { "rank \($0): \(answered[$0]!.description)" }.joined(separator: "; ")
        abort(String(format: "collective watchdog: %@ made no progress for %.0f s although every rank is waiting (%@). Aborting the job (exit status %d).",
                     here, waited, states, ExitStatus.stalled.rawValue))
    }

    private static func complete(_ requests: inout [MPI_Request?]) throws -> Bool {
        var done: Int32 = 0
        try Collective.check("MPI_Testall", MPI_Testall(Int32(requests.count), &requests, &done, rezero_mpi_statuses_ignore()))
        return done != 0
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}

/// A closure run once on another thread, and its result.
private final class BackgroundJob<T>: @unchecked Sendable {
    private var work: (() throws -> T)?
    private var result: Result<T, Error>?

    init(_ work: @escaping () throws -> T) { self.work = work }

    func run() {
        result = Result { try work!() }
        work = nil
    }

    func take() throws -> T { try result!.get() }
}
