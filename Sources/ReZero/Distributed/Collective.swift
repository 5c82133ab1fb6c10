import CMPI
import Foundation

public struct MPIError: Error, CustomStringConvertible {
    public let call: String, code: Int32
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return "\(call) failed: \(String(cString: buffer))"
    }
}

/// The ranks of one job and the collectives the trainer needs. Without mpirun this is a
/// one-rank MPI job (a singleton), the single-process debug mode.
///
/// Every collective is started non-blocking and completed by `Watchdog.wait`, which notices a
/// collective that makes no progress (a stopped or unreachable rank) and aborts the job instead
/// of hanging it. Buffers longer than `chunk` elements go out in several calls, since MPI counts
/// are 32-bit.
public final class Collective {
    public let rank: Int
    public let size: Int
    /// Ranks sharing this node (for the default BLAS thread count).
    public let ranksOnNode: Int
    fileprivate let world: MPI_Comm
    private let usesMPI: Bool
    /// Watches the waits of a job of several ranks; nil for one rank, which never waits.
    let watchdog: Watchdog?
    /// The most elements one MPI call is given (MPI counts are Int32); `check-allreduce --chunk`
    /// lowers it to test the splitting.
    public var chunk = Int(Int32.max)
    /// MPI calls started so far for sums and broadcasts of buffers: one per chunk.
    public private(set) var chunkCalls = 0
    /// Requests of the blocking-style calls, allocated once so that a step allocates nothing.
    private var requests: [MPI_Request?] = []

    public var isRoot: Bool { rank == 0 }

    /// A one-rank group that never touches MPI (library tests, tools).
    public static var local: Collective { Collective() }

    private init() {
        rank = 0
        size = 1
        ranksOnNode = 1
        world = rezero_mpi_comm_world()
        usesMPI = false
        watchdog = nil
    }

    /// Initializes MPI once per process; MPI errors are returned as codes, not fatal.
    /// - Parameter collectiveTimeout: seconds a collective may wait before the watchdog probes the
    ///   ranks; nil for the automatic timeout (`Watchdog.defaultTimeout`, scaled with the step time).
    public init(mpi: (), collectiveTimeout: Double? = nil) throws {
        // TCP transfers of the overlapped all-reduce keep moving between our MPI calls only with
        // the TCP transport's own progress thread (off by default); a user's setting wins.
        setenv("OMPI_MCA_btl_tcp_progress_thread", "1", 0)
        var argc: Int32 = 0
        var provided: Int32 = 0
        try Self.check("MPI_Init_thread", MPI_Init_thread(&argc, nil, Int32(MPI_THREAD_FUNNELED), &provided))
        world = rezero_mpi_comm_world()
        usesMPI = true
        try Self.check("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(world, rezero_mpi_errors_return()))
        var r: Int32 = 0, s: Int32 = 0
        try Self.check("MPI_Comm_rank", MPI_Comm_rank(world, &r))
        try Self.check("MPI_Comm_size", MPI_Comm_size(world, &s))
        rank = Int(r)
        size = Int(s)
        var node: MPI_Comm? = nil
        try Self.check("MPI_Comm_split_type",
                       MPI_Comm_split_type(world, Int32(MPI_COMM_TYPE_SHARED), r, rezero_mpi_info_null(), &node))
        var nodeSize: Int32 = 1
        try Self.check("MPI_Comm_size", MPI_Comm_size(node, &nodeSize))
        ranksOnNode = Int(nodeSize)
        MPI_Comm_free(&node)
        // The watchdog's probes travel on a communicator of their own, so they never match the
        // trainer's messages.
        var probes: MPI_Comm? = nil
        if size > 1 { try Self.check("MPI_Comm_dup", MPI_Comm_dup(world, &probes)) }
        watchdog = probes.map { [world] in
            Watchdog(communicator: $0, rank: Int(r), size: Int(s), timeout: collectiveTimeout) { message in
                Collective.abort(world: world, rank: r, size: s, message, status: .stalled)
            }
        }
        requests.reserveCapacity(64)
    }

    /// Waits (watched) until every rank gets here, then shuts MPI down.
    public func finalize() throws {
        guard usesMPI else { return }
        try barrier()
        MPI_Finalize()
    }

    /// Prints `[rank r] message` to stderr and ends every rank of the job with `status`
    /// (through MPI_Abort, which mpirun passes on as its own exit status).
    public func abort(_ message: String, status: ExitStatus) -> Never {
        Self.abort(world: usesMPI ? world : nil, rank: Int32(rank), size: Int32(size), message, status: status)
    }

    private static func abort(world: MPI_Comm?, rank: Int32, size: Int32, _ message: String, status: ExitStatus) -> Never {
        printError((size > 1 ? "[rank \(rank)] " : "") + message)
        if let world, size > 1 { MPI_Abort(world, status.rawValue) }
        exit(status.rawValue)
    }

    // MARK: Collectives

    /// In-place sum over ranks.
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard size > 1 else { return }
        requests.removeAll(keepingCapacity: true)
        try startSum(buffer, count: count, into: &requests)
        try watchdog!.wait(&requests, .gradientSum)
    }

    public func allReduce(_ values: inout [Double], _ op: ReduceOp) throws {
        guard size > 1 else { return }
        let count = Int32(values.count)
        requests.removeAll(keepingCapacity: true)
        try values.withUnsafeMutableBufferPointer { buffer in
            var request: MPI_Request? = nil
            try Self.check("MPI_Iallreduce", MPI_Iallreduce(rezero_mpi_in_place(), buffer.baseAddress, count,
                                                            rezero_mpi_double(), op.mpi, world, &request))
            requests.append(request)
            try watchdog!.wait(&requests, .reduction)
        }
    }

    /// Rank `root`'s bytes on every rank.
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) throws {
        guard size > 1 else { return }
        requests.removeAll(keepingCapacity: true)
        for start in stride(from: 0, to: bytes, by: chunk) {
            var request: MPI_Request? = nil
            try Self.check("MPI_Ibcast", MPI_Ibcast(buffer + start, Int32(Swift.min(chunk, bytes - start)),
                                                    rezero_mpi_byte(), Int32(root), world, &request))
            requests.append(request)
            chunkCalls += 1
        }
        try watchdog!.wait(&requests, .broadcast)
    }

    /// Rank 0's bytes on every rank.
    public func broadcast(_ bytes: [UInt8]) throws -> [UInt8] {
        guard size > 1 else { return bytes }
        var count = Int64(bytes.count)
        try broadcast(&count, bytes: 8)
        var received = isRoot ? bytes : [UInt8](repeating: 0, count: Int(count))
        try received.withUnsafeMutableBytes { try broadcast($0.baseAddress!, bytes: Int(count)) }
        return received
    }

    public func barrier() throws {
        guard size > 1 else { return }
        requests.removeAll(keepingCapacity: true)
        var request: MPI_Request? = nil
        try Self.check("MPI_Ibarrier", MPI_Ibarrier(world, &request))
        requests.append(request)
        try watchdog!.wait(&requests, .barrier)
    }

    /// Runs `work` (on rank 0: writing a checkpoint) while the other ranks wait in a collective:
    /// on a thread of its own, so that this rank keeps answering the watchdog's probes.
    func busy<T>(_ work: () throws -> T) throws -> T {
        guard let watchdog else { return try work() }
        return try watchdog.answeringProbes(while: work)
    }

    /// Starts the in-place sums of `buffer`, `chunk` elements per MPI call.
    fileprivate func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, into requests: inout [MPI_Request?]) throws {
        for start in stride(from: 0, to: count, by: chunk) {
            var request: MPI_Request? = nil
            try Self.check("MPI_Iallreduce", MPI_Iallreduce(rezero_mpi_in_place(), buffer + start,
                                                            Int32(Swift.min(chunk, count - start)), rezero_mpi_float(),
                                                            rezero_mpi_sum(), world, &request))
            requests.append(request)
            chunkCalls += 1
        }
    }

    /// In-place sums started one part at a time and completed together: the gradient all-reduce
    /// overlapped with backward. MPI moves data only inside MPI calls, so `progress()` is called
    /// between pieces of backward work.
    public final class OverlappedSum {
        private let collective: Collective
        private var requests: [MPI_Request?] = []
        private var failure: Error?

        public init(_ collective: Collective, capacity: Int) {
            self.collective = collective
            requests.reserveCapacity(capacity)
        }

        public func start(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
            guard failure == nil, count > 0 else { return }
            do {
                try collective.startSum(buffer, count: count, into: &requests)
            } catch {
                failure = error
            }
        }

        public func progress() {
            guard failure == nil, !requests.isEmpty else { return }
            var done: Int32 = 0
            let code = MPI_Testall(Int32(requests.count), &requests, &done, rezero_mpi_statuses_ignore())
            if code != rezero_mpi_success() { failure = MPIError(call: "MPI_Testall", code: code) }
        }

        /// Waits for every sum started; rethrows the first MPI error met on the way.
        public func finish() throws {
            defer { requests.removeAll(keepingCapacity: true) }
            if let failure { throw failure }
            try collective.watchdog!.wait(&requests, .gradientSum)
        }
    }

    public enum ReduceOp {
        case sum, max, min
        var mpi: MPI_Op {
            switch self {
            case .sum: return rezero_mpi_sum()
            case .max: return rezero_mpi_max()
            case .min: return rezero_mpi_min()
            }
        }
    }

    static func check(_ call: String, _ code: Int32) throws {
        if code != rezero_mpi_success() { throw MPIError(call: call, code: code) }
    }
}

/// Writes a line to stderr with write(2): unlike FileHandle's write, a failure (a closed pipe, a
/// full disk under a redirected log) is ignored instead of trapping.
public func printError(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    _ = AtomicFile.writeAll(STDERR_FILENO, Data(text.utf8))
}
