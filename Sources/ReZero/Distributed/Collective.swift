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
public final class Collective {
    public let rank: Int
    public let size: Int
    /// Ranks sharing this node (for the default BLAS thread count).
    public let ranksOnNode: Int
    fileprivate let world: MPI_Comm
    private let usesMPI: Bool

    public var isRoot: Bool { rank == 0 }

    /// A one-rank group that never touches MPI (library tests, tools).
    public static var local: Collective { Collective() }

    private init() {
        rank = 0
        size = 1
        ranksOnNode = 1
        world = rezero_mpi_comm_world()
        usesMPI = false
    }

    /// Initializes MPI once per process; MPI errors are returned as codes, not fatal.
    public init(mpi: ()) throws {
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
    }

    public func finalize() {
        if usesMPI { MPI_Finalize() }
    }

    /// Prints `[rank r] message` to stderr and ends every rank of the job with `status`
    /// (through MPI_Abort, which mpirun passes on as its own exit status).
    public func abort(_ message: String, status: ExitStatus) -> Never {
        let prefix = size > 1 ? "[rank \(rank)] " : ""
        FileHandle.standardError.write(Data("\(prefix)\(message)\n".utf8))
        if usesMPI && size > 1 { MPI_Abort(world, status.rawValue) }
        exit(status.rawValue)
    }

    // MARK: Collectives

    /// In-place sum over ranks.
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard size > 1 else { return }
        try Self.check("MPI_Allreduce", MPI_Allreduce(rezero_mpi_in_place(), buffer, Int32(count),
                                                      rezero_mpi_float(), rezero_mpi_sum(), world))
    }

    public func allReduce(_ values: inout [Double], _ op: ReduceOp) throws {
        guard size > 1 else { return }
        let count = Int32(values.count)
        try values.withUnsafeMutableBufferPointer { buffer in
            try Self.check("MPI_Allreduce", MPI_Allreduce(rezero_mpi_in_place(), buffer.baseAddress, count,
                                                          rezero_mpi_double(), op.mpi, world))
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) throws {
        guard size > 1 else { return }
        try Self.check("MPI_Bcast", MPI_Bcast(buffer, Int32(bytes), rezero_mpi_byte(), Int32(root), world))
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
        try Self.check("MPI_Barrier", MPI_Barrier(world))
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
            var request: MPI_Request? = nil
            let code = MPI_Iallreduce(rezero_mpi_in_place(), buffer, Int32(count), rezero_mpi_float(),
                                      rezero_mpi_sum(), collective.world, &request)
            if code != rezero_mpi_success() { failure = MPIError(call: "MPI_Iallreduce", code: code) }
            requests.append(request)
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
            try Collective.check("MPI_Waitall", MPI_Waitall(Int32(requests.count), &requests, rezero_mpi_statuses_ignore()))
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

    fileprivate static func check(_ call: String, _ code: Int32) throws {
        if code != rezero_mpi_success() { throw MPIError(call: call, code: code) }
    }
}
