import CFleetSys
import CMPI
import Foundation

/// OpenMPI backend: rank and size come from `MPI_Init` (under `mpirun`, or a one-rank
/// singleton without it). Errors are returned, not fatal, so they can carry a hint.
public final class MPITransport: HostAwareTransport {
    public let rank: Int
    public let worldSize: Int
    public let backendName = "mpi"
    public var timeout: Duration = .seconds(60)
    private var subCommunicators: [[Int]: MPI_Comm] = [:]
    private var isShutDown = false

    /// True when this process was started by `mpirun` (checked before `MPI_Init`).
    public static var isUnderMPIRun: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    public init() throws {
        var provided: Int32 = 0
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            let status = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_MULTIPLE), &provided)
            guard status == MPI_SUCCESS else { throw TransportError.backend("MPI_Init failed with code \(status)") }
        }
        MPI_Comm_set_errhandler(fleet_mpi_comm_world(), fleet_mpi_errors_return())
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(fleet_mpi_comm_world(), &r)
        MPI_Comm_size(fleet_mpi_comm_world(), &n)
        rank = Int(r)
        worldSize = Int(n)
        // Which rank runs where, for the shared-memory lanes and the paths a run reports.
        if worldSize > 1 { hosts = try allGather(Rendezvous.localHost) }
    }

    /// Every rank's host (gathered over MPI) and a job name rank 0 draws.
    public func hostTable() throws -> (hosts: [String], job: String) {
        (hosts, try broadcast(rank == 0 ? "\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : "", root: 0))
    }

    /// Every rank's host, gathered as the world opens.
    private var hosts: [String] = []

    /// Ranks on this host talk through OpenMPI's shared memory (vader), the others over its
    /// network transport — TCP where `OMPI_MCA_btl` allows only that (as on the test hosts).
    public func host(of rank: Int) -> String? { hosts.indices.contains(rank) ? hosts[rank] : nil }

    public func path(to peer: Int) -> String {
        guard peer != rank else { return "self" }
        guard hosts.count == worldSize else { return "mpi" }
        if hosts[peer] == hosts[rank], !hosts[rank].isEmpty { return "shm" }
        let btl = ProcessInfo.processInfo.environment["OMPI_MCA_btl"] ?? ""
        return btl.contains("tcp") && !btl.contains("openib") && !btl.contains("uct") ? "tcp" : "network"
    }

    /// Texts travel in fixed fields of this many bytes, NUL-padded.
    private static let textField = 256

    private static func field(_ text: String) throws -> [UInt8] {
        let bytes = Array(text.utf8)
        guard bytes.count < textField else { throw TransportError.backend("'\(text)' is too long to exchange (at most \(textField - 1) bytes)") }
        return bytes + [UInt8](repeating: 0, count: textField - bytes.count)
    }

    private static func text(_ field: ArraySlice<UInt8>) -> String { String(decoding: field.prefix { $0 != 0 }, as: UTF8.self) }

    /// Every rank's `text` (at most 255 bytes of UTF-8), in rank order.
    func allGather(_ text: String) throws -> [String] {
        let width = Self.textField
        let mine = try Self.field(text)
        var all = [UInt8](repeating: 0, count: width * worldSize)
        let code = all.withUnsafeMutableBytes { out in
            MPI_Allgather(mine, Int32(width), fleet_mpi_byte(), out.baseAddress, Int32(width), fleet_mpi_byte(), fleet_mpi_comm_world())
        }
        try check(code, "MPI_Allgather")
        return (0..<worldSize).map { Self.text(all[($0 * width)..<(($0 + 1) * width)]) }
    }

    /// `root`'s `text` (at most 255 bytes of UTF-8) on every rank.
    public func broadcast(_ text: String, root: Int) throws -> String {
        var bytes = try Self.field(rank == root ? text : "")
        try broadcast(&bytes, root: root)
        return Self.text(bytes[...])
    }

    private final class Handle {
        var request: MPI_Request?
        init(_ request: MPI_Request?) { self.request = request }
    }

    public func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        var mpiRequest: MPI_Request? = nil
        let code = MPI_Isend(data.baseAddress, Int32(data.count), fleet_mpi_byte(), Int32(peer), tag,
                             fleet_mpi_comm_world(), &mpiRequest)
        try check(code, "MPI_Isend to rank \(peer)")
        let request = Request(kind: .send, peer: peer, tag: tag, byteCount: data.count)
        request.handle = Handle(mpiRequest)
        return request
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        var mpiRequest: MPI_Request? = nil
        let code = MPI_Irecv(buffer.baseAddress, Int32(buffer.count), fleet_mpi_byte(), Int32(peer), tag,
                             fleet_mpi_comm_world(), &mpiRequest)
        try check(code, "MPI_Irecv from rank \(peer)")
        let request = Request(kind: .receive, peer: peer, tag: tag, byteCount: buffer.count)
        request.handle = Handle(mpiRequest)
        return request
    }

    public func test(_ request: Request) throws -> Bool {
        if request.isComplete { return true }
        let handle = request.handle as! Handle
        var flag: Int32 = 0
        var status = MPI_Status()
        let code = MPI_Test(&handle.request, &flag, &status)
        if code == MPI_ERR_TRUNCATE || status.MPI_ERROR == MPI_ERR_TRUNCATE {
            throw TransportError.sizeMismatch(operation: "receive (tag \(request.tag))", receiver: rank,
                                              expectedBytes: request.byteCount, sender: request.peer, sentBytes: nil)
        }
        try check(code, "MPI_Test on \(request.kind.rawValue) with rank \(request.peer)")
        guard flag != 0 else { return false }
        if request.kind == .receive {
            var count: Int32 = 0
            MPI_Get_count(&status, fleet_mpi_byte(), &count)
            if Int(count) != request.byteCount {
                throw TransportError.sizeMismatch(operation: "receive (tag \(request.tag))", receiver: rank,
                                                  expectedBytes: request.byteCount, sender: request.peer,
                                                  sentBytes: Int(count))
            }
        }
        request.isComplete = true
        request.handle = nil
        return true
    }

    public func progress(maxWait: Duration) throws {
        // Drive OpenMPI's progress engine even with no request of ours tested: a rank waiting
        // on shared-memory lanes still owes its peers on other hosts the rest of a large send
        // (over TCP the sender moves the bytes; vader's single copy on one host did not need it).
        var flag: Int32 = 0
        var status = MPI_Status()
        MPI_Iprobe(fleet_mpi_any_source(), fleet_mpi_any_tag(), fleet_mpi_comm_world(), &flag, &status)
        // With more ranks on this node than cores a waiting rank yields, so the rank it waits
        // for can run; otherwise a syscall per poll only adds latency to every message.
        if oversubscribed { sched_yield() }
    }

    /// Whether this machine runs more of the world's ranks than it has cores: counted from every
    /// rank's host identity by machine (test hosts of one machine share its cores, though OpenMPI
    /// counts each apart), else as OpenMPI counts this node's ranks.
    private lazy var oversubscribed: Bool = {
        let onMachine = hosts.count == worldSize ? Rendezvous.ranksOnMachine(of: rank, hosts: hosts)
            : ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? Int.max
        return SharedMemoryLanes.oversubscribed(ranksOnHost: onMachine)
    }()

    /// `MPI_Allreduce` over `members` (world ranks), the baseline that fleet's own algorithms are measured against.
    public func nativeAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, members: [Int]) throws {
        let comm = try communicator(for: members)
        let mpiOp: MPI_Op
        switch op {
        case .sum, .average: mpiOp = fleet_mpi_op_sum()
        case .max: mpiOp = fleet_mpi_op_max()
        case .min: mpiOp = fleet_mpi_op_min()
        }
        let code = MPI_Allreduce(fleet_mpi_in_place(), buffer.baseAddress, Int32(buffer.count), fleet_mpi_float(), mpiOp, comm)
        try check(code, "MPI_Allreduce")
    }

    /// `MPI_Bcast` of `bytes` from `root` to every rank (all must pass the same count).
    private func broadcast(_ bytes: inout [UInt8], root: Int) throws {
        let count = Int32(bytes.count)
        let code = bytes.withUnsafeMutableBytes { MPI_Bcast($0.baseAddress, count, fleet_mpi_byte(), Int32(root), fleet_mpi_comm_world()) }
        try check(code, "MPI_Bcast")
    }

    private func communicator(for members: [Int]) throws -> MPI_Comm {
        if members.count == worldSize && members == Array(0..<worldSize) { return fleet_mpi_comm_world() }
        if let comm = subCommunicators[members] { return comm }
        var worldGroup: MPI_Group? = nil
        var group: MPI_Group? = nil
        var comm: MPI_Comm? = nil
        MPI_Comm_group(fleet_mpi_comm_world(), &worldGroup)
        var ranks = members.map { Int32($0) }
        MPI_Group_incl(worldGroup, Int32(ranks.count), &ranks, &group)
        // Collective over the group only, so disjoint groups may create theirs independently.
        let code = MPI_Comm_create_group(fleet_mpi_comm_world(), group, 7, &comm)
        try check(code, "MPI_Comm_create_group")
        MPI_Group_free(&group)
        MPI_Group_free(&worldGroup)
        guard let created = comm else { throw TransportError.backend("MPI_Comm_create_group returned no communicator") }
        subCommunicators[members] = created
        return created
    }

    private func check(_ code: Int32, _ what: @autoclosure () -> String) throws {
        guard code == MPI_SUCCESS else {
            var length: Int32 = 0
            var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
            MPI_Error_string(code, &text, &length)
            throw TransportError.backend("\(what()) failed: \(String(cString: text))")
        }
    }

    /// Ends every rank of the job after a failure on this one. MPI_Finalize would wait for
    /// peers that may never arrive (a hung rank), leaving the job to hang; MPI_Abort makes
    /// mpirun stop all ranks and exit non-zero, so a supervisor can restart the job.
    public func abort(status: Int32) -> Never {
        isShutDown = true
        MPI_Abort(fleet_mpi_comm_world(), status)
        exit(status)
    }

    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        for (_, comm) in subCommunicators { var handle: MPI_Comm? = comm; MPI_Comm_free(&handle) }
        subCommunicators.removeAll()
        MPI_Finalize()
    }
}
