import Foundation

/// In-process backend: one `LocalTransport` per thread, all sharing a `LocalFabric`.
/// Sends copy into the receiver's mailbox at once, so they complete immediately;
/// a receive completes when a matching message has arrived.
public final class LocalFabric: @unchecked Sendable {   // `condition` guards the mailboxes
    public let worldSize: Int
    fileprivate let condition = NSCondition()
    fileprivate var mailboxes: [[LocalMessage]]
    fileprivate var departed: Set<Int> = []
    /// Which host each rank stands for (tests of host-aware collectives); nil: all on one.
    public var hosts: [String]?

    public init(worldSize: Int) {
        precondition(worldSize > 0)
        self.worldSize = worldSize
        mailboxes = Array(repeating: [], count: worldSize)
    }

    /// The endpoint of `rank`; each is meant to be used by one thread.
    public func endpoint(rank: Int) -> LocalTransport {
        LocalTransport(fabric: self, rank: rank)
    }

    /// Runs `body` on `worldSize` threads, one per rank, and returns their results in rank order.
    public static func run<T>(worldSize: Int, timeout: Duration = .seconds(30), clock: TransportClock = SystemTransportClock.shared,
                              hosts: [String]? = nil, _ body: @escaping @Sendable (LocalTransport) throws -> T) -> [Result<T, Error>] {
        let fabric = LocalFabric(worldSize: worldSize)
        fabric.hosts = hosts
        let results = ResultBox<T>(count: worldSize)
        let group = DispatchGroup()
        for rank in 0..<worldSize {
            let thread = Thread {
                let transport = fabric.endpoint(rank: rank)
                transport.timeout = timeout
                transport.clock = clock
                let result = Result { try body(transport) }
                transport.shutdown()
                results.set(rank, result)
                group.leave()
            }
            thread.stackSize = 8 << 20
            group.enter()
            thread.start()
        }
        group.wait()
        return results.values.map { $0! }
    }
}

private final class ResultBox<T>: @unchecked Sendable {   // a lock guards `values`
    private let lock = NSLock()
    private(set) var values: [Result<T, Error>?]
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<T, Error>) { lock.lock(); values[index] = value; lock.unlock() }
}

fileprivate struct LocalMessage {
    let source: Int
    let tag: Int32
    let bytes: [UInt8]
}

private final class LocalReceive {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}

public final class LocalTransport: Transport {
    public let rank: Int
    public var worldSize: Int { fabric.worldSize }
    public let backendName = "local"
    public var timeout: Duration = .seconds(30)
    public var clock: TransportClock = SystemTransportClock.shared
    private let fabric: LocalFabric
    /// Posted receives in posting order, so equal (source, tag) pairs match in order.
    private var posted: [Request] = []

    fileprivate init(fabric: LocalFabric, rank: Int) {
        self.fabric = fabric
        self.rank = rank
    }

    public func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        let message = LocalMessage(source: rank, tag: tag, bytes: Array(data))
        fabric.condition.lock()
        fabric.mailboxes[peer].append(message)
        fabric.condition.broadcast()
        fabric.condition.unlock()
        let request = Request(kind: .send, peer: peer, tag: tag, byteCount: data.count)
        request.isComplete = true
        return request
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        let request = Request(kind: .receive, peer: peer, tag: tag, byteCount: buffer.count)
        request.handle = LocalReceive(buffer)
        posted.append(request)
        return request
    }

    public func test(_ request: Request) throws -> Bool {
        if request.isComplete { return true }
        try matchPosted()
        return request.isComplete
    }

    /// Matches posted receives against the mailbox in posting order.
    private func matchPosted() throws {
        fabric.condition.lock()
        defer { fabric.condition.unlock() }
        var remaining: [Request] = []
        for request in posted {
            guard let index = fabric.mailboxes[rank].firstIndex(where: { $0.source == request.peer && $0.tag == request.tag }),
                  !remaining.contains(where: { $0.peer == request.peer && $0.tag == request.tag }) else {
                remaining.append(request)
                continue
            }
            let message = fabric.mailboxes[rank].remove(at: index)
            guard message.bytes.count == request.byteCount else {
                throw TransportError.sizeMismatch(operation: "receive (tag \(request.tag))", receiver: rank,
                                                  expectedBytes: request.byteCount, sender: message.source,
                                                  sentBytes: message.bytes.count)
            }
            let target = (request.handle as! LocalReceive).buffer
            message.bytes.withUnsafeBytes { if $0.count > 0 { target.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            request.isComplete = true
            request.handle = nil
        }
        posted = remaining
    }

    public func progress(maxWait: Duration) throws {
        fabric.condition.lock()
        let hasMail = !fabric.mailboxes[rank].isEmpty
        if !hasMail || !posted.isEmpty {
            let wait = min(clock.realWait(maxWait).seconds, 0.005)
            if wait > 0 { _ = fabric.condition.wait(until: Date(timeIntervalSinceNow: wait)) }
        }
        let dead = fabric.departed
        fabric.condition.unlock()
        if let request = posted.first(where: { dead.contains($0.peer) }) {
            try matchPosted()
            if !request.isComplete {
                throw TransportError.peerDied(rank: request.peer, operation: "receive (tag \(request.tag))")
            }
        }
    }

    public func host(of rank: Int) -> String? { fabric.hosts.flatMap { $0.indices.contains(rank) ? $0[rank] : nil } }

    public func shutdown() {
        fabric.condition.lock()
        fabric.departed.insert(rank)
        fabric.condition.broadcast()
        fabric.condition.unlock()
    }
}
