import Foundation

/// A transport whose peers know which host each rank runs on (`hosts[rank]`), and a name
/// every rank of this world shares (for the shared-memory segments' names).
public protocol HostAwareTransport: Transport {
    func hostTable() throws -> (hosts: [String], job: String)
}

/// A transport that can tell which peers' processes are gone (connection closed) for longer
/// than `grace`, so a decorator can fail its own requests to them.
public protocol PeerLiveness: AnyObject {
    func departedPeers(grace: Duration) -> [Int]
}

/// Every message to a rank on this host travels through shared-memory lanes
/// (`SharedMemoryLanes`); messages to other hosts go over the wrapped transport (MPI or
/// ZeroMQ). One decorator for both, as `FaultyTransport` is for faults.
public final class SharedMemoryTransport: TransportDecorator {
    /// The wrapped transport (MPI's own collectives run on it).
    public let inner: Transport
    let lanes: SharedMemoryLanes
    /// Waits on the lanes spin; every so many spins they let the wrapped transport progress too.
    private var spins = 0

    public var sharedMemoryPeers: Int { lanes.served.count }
    public func path(to peer: Int) -> String { lanes.serves(peer) ? "shm" : inner.path(to: peer) }

    /// `inner` with lanes to the ranks on this host, or `inner` itself when no other rank
    /// shares the host (or shared memory cannot be set up there).
    public static func wrap(_ inner: HostAwareTransport) throws -> Transport {
        guard inner.worldSize > 1 else { return inner }
        let (hosts, job) = try inner.hostTable()
        guard let lanes = try SharedMemoryLanes.connect(inner, hosts: hosts, job: job) else { return inner }
        return SharedMemoryTransport(inner, lanes: lanes)
    }

    init(_ inner: Transport, lanes: SharedMemoryLanes) {
        self.inner = inner
        self.lanes = lanes
    }

    /// How many slots this rank wrote plain and streamed, and relayed directly or through the buffer.
    public var report: String { lanes.report }

    public func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request {
        if lanes.serves(peer) { return lanes.isend(data, to: peer, tag: tag) }
        return try inner.isend(data, to: peer, tag: tag)
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request {
        if lanes.serves(peer) { return try lanes.irecv(into: buffer, from: peer, tag: tag) }
        return try inner.irecv(into: buffer, from: peer, tag: tag)
    }

    public func irecvReducing(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, from peer: Int, tag: Int32) throws -> Request? {
        try lanes.irecvReducing(into: buffer, op: op, from: peer, tag: tag)
    }

    public func irecvForwarding(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp?, from peer: Int, tag: Int32,
                                to next: Int, forwardTag: Int32, keep: Bool) throws -> (receive: Request, forward: Request)? {
        try lanes.irecvForwarding(into: buffer, op: op, from: peer, tag: tag, to: next, forwardTag: forwardTag, keep: keep)
    }

    public func test(_ request: Request) throws -> Bool {
        if request.isComplete { return true }
        guard lanes.serves(request.peer) else { return try inner.test(request) }
        try lanes.progress()
        return request.isComplete
    }

    public func progress(maxWait: Duration) throws {
        guard lanes.hasPendingWork else {
            try inner.progress(maxWait: maxWait)
            try failRequestsToDepartedPeers()
            return
        }
        // Shared memory wakes nothing the wrapped transport waits on: wait on the lanes, and let
        // it progress now and then (at every wait where some peers are reached only through it).
        try lanes.idle(maxWait: maxWait)
        spins &+= 1
        if !lanes.reachesEveryPeer || spins % 64 == 0 {
            try inner.progress(maxWait: .zero)
            try failRequestsToDepartedPeers()
        }
    }

    /// A lane request to a peer whose process is gone can never complete.
    private func failRequestsToDepartedPeers() throws {
        guard let liveness = inner as? PeerLiveness else { return }
        for peer in liveness.departedPeers(grace: .milliseconds(500)) where lanes.serves(peer) {
            if let request = lanes.matcher.pendingReceive(from: peer) {
                throw TransportError.peerDied(rank: peer, operation: "receive (tag \(request.tag))")
            }
            if let send = lanes.pendingSend(to: peer) {
                throw TransportError.peerDied(rank: peer, operation: "send (tag \(send.tag))")
            }
        }
    }

    public func shutdown() {
        lanes.release()
        inner.shutdown()
    }
}

/// A transport that wraps another (shared-memory lanes, faults) and passes on what it does not
/// change: the rank, the world, the backend's name and the deadline.
public protocol TransportDecorator: Transport {
    var inner: Transport { get }
}

extension TransportDecorator {
    public var rank: Int { inner.rank }
    public var worldSize: Int { inner.worldSize }
    public var backendName: String { inner.backendName }
    public var clock: TransportClock { inner.clock }
    public var sharedMemoryPeers: Int { inner.sharedMemoryPeers }
    public func path(to peer: Int) -> String { inner.path(to: peer) }
    public func host(of rank: Int) -> String? { inner.host(of: rank) }
    public var timeout: Duration {
        get { inner.timeout }
        set { inner.timeout = newValue }
    }
}

extension Transport {
    /// The MPI transport under this one (for MPI's own collectives, `--algo native`, and to
    /// abort the job): this transport itself, or the one its decorators wrap.
    public var mpi: MPITransport? {
        sequence(first: self as Transport) { ($0 as? TransportDecorator)?.inner }.lazy.compactMap { $0 as? MPITransport }.first
    }
}
