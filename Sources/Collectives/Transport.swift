/// A message endpoint of one rank in a fixed world of ranks.
///
/// Backends (MPI, ZeroMQ, in-process) implement non-blocking tagged point-to-point
/// transfers of bytes; everything else (blocking calls, deadlines, sub-groups,
/// collectives) is written once on top of this protocol.
public protocol Transport: AnyObject {
    /// This process's rank in `0..<worldSize`.
    var rank: Int { get }
    var worldSize: Int { get }
    /// Short backend name for reports: `mpi`, `zmq`, `local`.
    var backendName: String { get }
    /// How long any blocking call may wait on a peer before it fails with `peerTimedOut`.
    var timeout: Duration { get set }
    /// The clock `timeout` is measured on (the machine's, unless a test controls it).
    var clock: TransportClock { get }

    /// Starts sending `data` to `peer`; the bytes must stay valid and unchanged until the request completes.
    func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request
    /// Starts receiving exactly `buffer.count` bytes from `peer`; a message of another size is an error.
    func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request
    /// Returns whether `request` has completed, advancing it if the backend needs that.
    func test(_ request: Request) throws -> Bool
    /// Lets pending transfers advance, blocking for at most `maxWait` when nothing is ready.
    func progress(maxWait: Duration) throws
    /// Releases the backend's resources; the transport is unusable afterwards.
    func shutdown()
    /// How many peers this rank reaches through shared memory instead of the backend itself.
    var sharedMemoryPeers: Int { get }
    /// How this rank's messages reach `peer`: `shm` (shared memory, fleet's lanes or MPI's own),
    /// `tcp`, `ipc` (a ZeroMQ socket file), `local` (in-process), or `self`.
    func path(to peer: Int) -> String
    /// The host `rank` runs on (an identity, equal for ranks that share a machine), where known.
    func host(of rank: Int) -> String?
    /// Starts a receive that combines the arriving floats into `buffer` (`buffer ⊕ message`)
    /// as they come, saving a staging copy; nil where the backend cannot (then receive and
    /// combine separately).
    func irecvReducing(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, from peer: Int, tag: Int32) throws -> Request?
    /// Starts a receive whose bytes go on to `next` (tag `forwardTag`) as they arrive, combined
    /// with `buffer` first when `op` is set (`buffer ⊕ message`): a ring's relay in one pass
    /// instead of landing and later re-reading. With `keep` the result also lands in `buffer`;
    /// without it `buffer` holds unspecified values afterwards. Returns the receive and the
    /// forwarding send (done once every byte went on), or nil where the backend cannot.
    func irecvForwarding(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp?, from peer: Int, tag: Int32,
                         to next: Int, forwardTag: Int32, keep: Bool) throws -> (receive: Request, forward: Request)?
}

/// A pending send or receive; completion is observed through `Transport.test` or `wait`.
public final class Request {
    public enum Kind: String { case send, receive }
    public let kind: Kind
    public let peer: Int
    public let tag: Int32
    public let byteCount: Int
    /// Set by the backend once the transfer is done.
    public internal(set) var isComplete = false
    /// Backend-specific state (an MPI request handle, a posted ZeroMQ receive, …).
    var handle: AnyObject?

    /// Backends and transport decorators (fault injection) create requests.
    public init(kind: Kind, peer: Int, tag: Int32, byteCount: Int) {
        self.kind = kind
        self.peer = peer
        self.tag = tag
        self.byteCount = byteCount
    }

    /// For decorators: marks a request complete (a send a decorator chose to drop, say).
    public func markComplete() { isComplete = true }

    /// For decorators: their own state for this request (the wrapped transport's requests).
    public var decoration: AnyObject? {
        get { handle }
        set { handle = newValue }
    }
}

extension Transport {
    public var sharedMemoryPeers: Int { 0 }
    public func path(to peer: Int) -> String { peer == rank ? "self" : "local" }
    public func host(of rank: Int) -> String? { nil }
    public var clock: TransportClock { SystemTransportClock.shared }
    public func irecvReducing(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, from peer: Int, tag: Int32) throws -> Request? { nil }
    public func irecvForwarding(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp?, from peer: Int, tag: Int32,
                                to next: Int, forwardTag: Int32, keep: Bool) throws -> (receive: Request, forward: Request)? { nil }

    /// Waits for every request, failing with `peerTimedOut` naming the first peer that
    /// has not answered once `timeout` has passed.
    public func wait(_ requests: [Request], operation: @autoclosure () -> String) throws {
        // Most waits find their requests done at the first test: no clock, no allocation.
        if try requests.allSatisfy({ try test($0) }) { return }
        var pending = requests.filter { !$0.isComplete }
        if pending.isEmpty { return }
        let clock = self.clock
        let deadline = clock.elapsed + timeout
        while true {
            var stillPending: [Request] = []
            for request in pending where try !test(request) { stillPending.append(request) }
            pending = stillPending
            if pending.isEmpty { return }
            let now = clock.elapsed
            if now >= deadline {
                // A missing receive names the silent peer better than a blocked send does.
                let culprit = pending.first { $0.kind == .receive } ?? pending[0]
                var what = operation()
                // A peer on another host may be cut off rather than stuck: say where it runs.
                if let theirs = host(of: culprit.peer), let mine = host(of: rank), theirs != mine, !theirs.isEmpty {
                    what += "; rank \(culprit.peer) runs on host \(Rendezvous.name(ofHost: theirs)), reached over the network (check the link to it too)"
                }
                throw TransportError.peerTimedOut(rank: culprit.peer, operation: what, after: timeout)
            }
            let slice = min(deadline - now, .milliseconds(50))
            try progress(maxWait: clock.realWait(slice))
            if pending.allSatisfy({ !$0.isComplete }) { clock.waitedForTraffic(slice) }
        }
    }

    public func wait(_ request: Request, operation: @autoclosure () -> String) throws {
        try wait([request], operation: operation())
    }

    /// Blocking send with the transport's deadline.
    public func send(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws {
        let request = try isend(data, to: peer, tag: tag)
        try wait(request, operation: "send to rank \(peer) (tag \(tag))")
    }

    /// Blocking receive with the transport's deadline.
    public func recv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws {
        let request = try irecv(into: buffer, from: peer, tag: tag)
        try wait(request, operation: "receive from rank \(peer) (tag \(tag))")
    }

    func checkPeer(_ peer: Int) throws {
        guard peer >= 0 && peer < worldSize else {
            throw TransportError.invalidRank(peer, worldSize: worldSize)
        }
    }
}
