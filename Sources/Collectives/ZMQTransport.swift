import CFleetSys
import CZMQ
import Foundation

/// ZeroMQ backend. Each rank binds one PULL socket (its inbox) and connects one PUSH
/// socket to every peer's inbox; endpoints are exchanged through a coordinator (rank 0)
/// at `FLEET_ZMQ_COORDINATOR`. Messages are split into chunks so that ZeroMQ never
/// allocates one huge buffer per message (page faults dominate above a few MiB).
///
/// Between ranks on one host, large messages take a single-copy path: ZeroMQ carries a
/// descriptor (process, address, length), the receiver copies the bytes straight out of
/// the sender's memory (`process_vm_readv`) and answers with an acknowledgement that
/// completes the send. A socket copies every byte twice (into the kernel and out) and
/// through ZeroMQ's I/O thread; this is the single copy MPI's shared-memory transport makes.
/// Where the kernel forbids it, the receiver says so and the bytes travel over the socket.
public final class ZMQTransport: HostAwareTransport, PeerLiveness {
    /// Where this rank sits and how it finds the others.
    public struct Configuration: Sendable {
        public var rank: Int
        public var worldSize: Int
        /// Address rank 0 binds for the rendezvous, e.g. `tcp://127.0.0.1:29500` or `ipc:///tmp/fleet-1/coord`.
        public var coordinator: String
        /// Address this rank's inbox binds: `tcp://127.0.0.1:*` picks a free port.
        public var bind: String
        public var rendezvousTimeout: Duration = .seconds(60)
        /// The job's key: with it every socket authenticates and encrypts (CURVE), and only
        /// peers holding it get in; without it, anyone who reaches the addresses can.
        public var key: JobKey?

        public init(rank: Int, worldSize: Int, coordinator: String, bind: String = "tcp://127.0.0.1:*") {
            self.rank = rank
            self.worldSize = worldSize
            self.coordinator = coordinator
            self.bind = bind
        }
    }

    public let rank: Int
    public let worldSize: Int
    public let backendName = "zmq"
    public var timeout: Duration = .seconds(60)
    /// Largest single ZeroMQ message; bigger buffers travel as several chunks.
    public var chunkBytes = 1 << 20
    /// Sends at least this large are handed to ZeroMQ without a copy.
    public var zeroCopyBytes = 64 << 10
    /// Messages at least this large to a rank on this host take the single-copy path
    /// (`FLEET_ZMQ_SINGLE_COPY`: a size in bytes, or `off`).
    public var singleCopyBytes = ZMQTransport.singleCopyThreshold()
    /// Peers whose memory this rank's messages may be read from directly (same host, not refused).
    var singleCopyPeers: [Bool] = []
    /// Single-copy sends waiting for the receiver's acknowledgement, by id.
    var singleCopySends: [UInt64: SingleCopySend] = [:]
    var nextSingleCopyID: UInt64 = 1
    /// Every rank's host, and a name of this world that all ranks derive alike (from the rendezvous table).
    private var hosts: [String] = []
    private var job = ""
    /// Where each rank's inbox listens.
    private var peerEndpoints: [String] = []
    /// How a receiver reads a peer's memory; replaceable to exercise the socket fallback.
    public var singleCopyReader: MemoryReader = ZMQTransport.crossMemoryAttach

    let context: UnsafeMutableRawPointer
    let inbox: UnsafeMutableRawPointer
    var outboxes: [UnsafeMutableRawPointer?] = []
    var monitors: [UnsafeMutableRawPointer?] = []
    var matcher: MessageMatcher
    /// ZeroMQ releasing a zero-copy chunk wakes no socket, so each release also writes a
    /// byte here, which waiting polls beside the inbox.
    let wakeup = WakeupPipe()
    /// When each peer's connection dropped, if it did.
    var disconnected: [Int: ContinuousClock.Instant] = [:]
    private var isShutDown = false
    /// Where the inbox listens (an ipc socket file is removed at shutdown).
    private var inboxEndpoint = ""
    /// The job's key and the handler that admits only its holders (nil: no authentication).
    private var key: JobKey?
    private var zap: ZAPHandler?

    /// Every rank's inbox address, by rank.
    public var endpoints: [String] { peerEndpoints }

    /// Connection attempts this rank refused (a wrong key, none at all), as reported.
    public var refusedConnections: [String] { zap?.refused ?? [] }

    public init(_ configuration: Configuration) throws {
        guard configuration.worldSize > 0, (0..<configuration.worldSize).contains(configuration.rank) else {
            throw TransportError.invalidRank(configuration.rank, worldSize: configuration.worldSize)
        }
        rank = configuration.rank
        worldSize = configuration.worldSize
        matcher = MessageMatcher(rank: configuration.rank)
        guard let ctx = zmq_ctx_new() else { throw TransportError.backend("zmq_ctx_new failed") }
        context = ctx
        // One I/O thread: on 2 cores with 4 ranks, more threads only compete with compute.
        zmq_ctx_set(context, ZMQ_IO_THREADS, 1)
        if let key = configuration.key { zap = try ZAPHandler(context: context, key: key, rank: configuration.rank) }
        key = configuration.key
        guard let socket = zmq_socket(context, ZMQ_PULL) else { throw Self.lastError("zmq_socket(PULL)") }
        inbox = socket
        try Self.setOption(inbox, ZMQ_RCVHWM, 0)
        try configuration.key?.serve(inbox)
        guard zmq_bind(inbox, configuration.bind) == 0 else {
            throw Self.lastError("binding this rank's inbox at \(configuration.bind)")
        }
        inboxEndpoint = try Self.lastEndpoint(inbox)
        let entry = Rendezvous.Entry(endpoint: inboxEndpoint, host: Rendezvous.localHost)
        let table = try Rendezvous.exchange(context: context, configuration: configuration, entry: entry)
        peerEndpoints = table.map(\.endpoint)
        try connect(to: peerEndpoints)
        enableSingleCopy(hosts: table.map(\.host))
        hosts = table.map(\.host)
        job = String(table.map(\.line).joined(separator: "\n").utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }, radix: 16)
    }

    public func hostTable() throws -> (hosts: [String], job: String) { (hosts, job) }

    public func host(of rank: Int) -> String? { hosts.indices.contains(rank) ? hosts[rank] : nil }

    public func path(to peer: Int) -> String {
        guard peer != rank else { return "self" }
        let endpoint = peerEndpoints.indices.contains(peer) ? peerEndpoints[peer] : ""
        return String(endpoint.prefix { $0 != ":" })
    }

    /// Peers whose connection dropped more than `grace` ago (their last messages had time to arrive).
    public func departedPeers(grace: Duration) -> [Int] {
        let now = ContinuousClock.now
        return disconnected.filter { now - $0.value > grace }.map(\.key).sorted()
    }

    private func connect(to endpoints: [String]) throws {
        outboxes = Array(repeating: nil, count: worldSize)
        monitors = Array(repeating: nil, count: worldSize)
        for peer in 0..<worldSize where peer != rank {
            guard let push = zmq_socket(context, ZMQ_PUSH) else { throw Self.lastError("zmq_socket(PUSH)") }
            try Self.setOption(push, ZMQ_SNDHWM, 0)
            try Self.setOption(push, ZMQ_LINGER, 2000)
            let monitorAddress = "inproc://fleet-monitor-\(peer)"
            try key?.join(push)
            zmq_socket_monitor(push, monitorAddress, ZMQ_EVENT_DISCONNECTED)
            guard let monitor = zmq_socket(context, ZMQ_PAIR), zmq_connect(monitor, monitorAddress) == 0 else {
                throw Self.lastError("monitoring the connection to rank \(peer)")
            }
            guard zmq_connect(push, endpoints[peer]) == 0 else {
                throw Self.lastError("connecting to rank \(peer) at \(endpoints[peer])")
            }
            outboxes[peer] = push
            monitors[peer] = monitor
        }
    }

    public func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        let request = Request(kind: .send, peer: peer, tag: tag, byteCount: data.count)
        if peer == rank {
            try matcher.deliverLocal(data, tag: tag)
            request.isComplete = true
            return request
        }
        if singleCopyPeers[peer] && data.count >= singleCopyBytes {
            try sendDescriptor(data, to: peer, request: request)
            return request
        }
        try sendBytes(data, to: peer, request: request, header: WireHeader(source: Int32(rank), tag: tag, total: UInt64(data.count)))
        return request
    }

    /// Sends `data` over the socket, in chunks that each start with `header` (its offset set).
    func sendBytes(_ data: UnsafeRawBufferPointer, to peer: Int, request: Request, header: WireHeader) throws {
        var header = header
        let zeroCopy = data.count >= zeroCopyBytes
        let chunks = max(1, (data.count + chunkBytes - 1) / chunkBytes)
        let completion = zeroCopy ? ZeroCopyCompletion(chunks: chunks, wakeup: wakeup) : nil
        var offset = 0
        repeat {
            let length = min(chunkBytes, data.count - offset)
            header.offset = UInt64(offset)
            try withUnsafeBytes(of: &header) { try sendFrame(peer, $0, more: true) }
            let chunk = UnsafeRawBufferPointer(rebasing: data[offset..<(offset + length)])
            if let completion {
                try sendZeroCopy(peer, chunk, completion: completion)
            } else {
                try sendFrame(peer, chunk, more: false)
            }
            offset += length
        } while offset < data.count
        // A copying send is done once zmq_send returns; a zero-copy one when ZeroMQ releases every chunk.
        if let completion { request.handle = completion } else { request.isComplete = true }
    }

    /// Hands `bytes` to ZeroMQ without copying; `completion` learns when ZeroMQ lets go of them.
    private func sendZeroCopy(_ peer: Int, _ bytes: UnsafeRawBufferPointer, completion: ZeroCopyCompletion) throws {
        var message = zmq_msg_t()
        let hint = Unmanaged.passRetained(completion).toOpaque()
        let release: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
            Unmanaged<ZeroCopyCompletion>.fromOpaque(hint!).takeRetainedValue().chunkReleased()
        }
        guard zmq_msg_init_data(&message, UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count, release, hint) == 0 else {
            Unmanaged<ZeroCopyCompletion>.fromOpaque(hint).release()
            throw Self.lastError("preparing a zero-copy message to rank \(peer)")
        }
        while zmq_msg_send(&message, outboxes[peer], 0) < 0 {
            if zmq_errno() == EINTR { continue }
            zmq_msg_close(&message)
            throw Self.lastError("sending to rank \(peer)")
        }
    }

    func sendFrame(_ peer: Int, _ bytes: UnsafeRawBufferPointer, more: Bool) throws {
        while zmq_send(outboxes[peer], bytes.baseAddress, bytes.count, more ? ZMQ_SNDMORE : 0) < 0 {
            if zmq_errno() == EINTR { continue }
            throw Self.lastError("sending to rank \(peer)")
        }
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request {
        try checkPeer(peer)
        let request = Request(kind: .receive, peer: peer, tag: tag, byteCount: buffer.count)
        try matcher.post(request, buffer: buffer)
        return request
    }

    public func test(_ request: Request) throws -> Bool {
        if request.isComplete { return true }
        if let completion = request.handle as? ZeroCopyCompletion {
            if completion.isDone { request.isComplete = true; request.handle = nil }
            return request.isComplete
        }
        try drainInbox()
        return request.isComplete
    }


    public func progress(maxWait: Duration) throws {
        // No wait asked for: just look (a decorator waiting on something else checks the sockets in passing).
        try poll(milliseconds: maxWait == .zero ? 0 : max(1, Int(maxWait.seconds * 1000)))
    }

    private func poll(milliseconds: Int) throws {
        var items = [zmq_pollitem_t(socket: inbox, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)]
        for monitor in monitors where monitor != nil {
            items.append(zmq_pollitem_t(socket: monitor, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0))
        }
        items.append(zmq_pollitem_t(socket: nil, fd: wakeup.readEnd, events: Int16(ZMQ_POLLIN), revents: 0))
        if zmq_poll(&items, Int32(items.count), milliseconds) < 0 && zmq_errno() != EINTR {
            throw Self.lastError("zmq_poll")
        }
        wakeup.drain()
        try drainInbox()
        try drainMonitors()
        try failReceivesFromDeadPeers()
    }

    /// Receives every message already queued, matching each against posted receives.
    func drainInbox() throws {
        var header = WireHeader(source: 0, tag: 0, total: 0)
        while true {
            let received = withUnsafeMutableBytes(of: &header) { zmq_recv(inbox, $0.baseAddress, $0.count, ZMQ_DONTWAIT) }
            if received < 0 {
                let code = zmq_errno()
                if code == EAGAIN { return }
                if code == EINTR { continue }
                throw Self.lastError("receiving")
            }
            guard received == MemoryLayout<WireHeader>.size else {
                throw TransportError.backend("malformed ZeroMQ message header (\(received) bytes) on rank \(rank)")
            }
            switch header.kind {
            case WireHeader.data, WireHeader.fallbackData: try matcher.deliver(header, from: inbox)
            case WireHeader.descriptor: try matcher.deliverDescriptor(header)
            case WireHeader.acknowledged, WireHeader.refused: try singleCopyAnswered(header)
            default: throw TransportError.backend("unknown ZeroMQ message kind \(header.kind) from rank \(header.source)")
            }
        }
    }

    private func drainMonitors() throws {
        for (peer, monitor) in monitors.enumerated() {
            guard let monitor else { continue }
            var event = [UInt8](repeating: 0, count: 64)
            while zmq_recv(monitor, &event, event.count, ZMQ_DONTWAIT) >= 0 {
                let code = UInt16(event[0]) | UInt16(event[1]) << 8
                if Int32(code) == ZMQ_EVENT_DISCONNECTED && disconnected[peer] == nil {
                    disconnected[peer] = ContinuousClock.now
                }
                // The second frame is the endpoint address; it carries nothing fleet needs.
                var more: Int32 = 0
                var size = MemoryLayout<Int32>.size
                zmq_getsockopt(monitor, ZMQ_RCVMORE, &more, &size)
                if more != 0 { _ = zmq_recv(monitor, &event, event.count, ZMQ_DONTWAIT) }
            }
        }
    }

    /// A peer whose connection dropped cannot complete a receive; after a short grace
    /// period (its last messages may still be in flight) the receive fails.
    private func failReceivesFromDeadPeers() throws {
        let now = ContinuousClock.now
        for (peer, since) in disconnected where now - since > .milliseconds(500) {
            if let request = matcher.pendingReceive(from: peer) {
                throw TransportError.peerDied(rank: peer, operation: "receive (tag \(request.tag))")
            }
            if let send = singleCopySends.values.first(where: { $0.request.peer == peer })?.request {
                throw TransportError.peerDied(rank: peer, operation: "send (tag \(send.tag))")
            }
        }
    }

    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        for (peer, push) in outboxes.enumerated() {
            guard let push else { continue }
            zmq_socket_monitor(push, nil, 0)
            if let monitor = monitors[peer] { zmq_close(monitor) }
            zmq_close(push)
        }
        zmq_close(inbox)
        Self.removeSocketFile(inboxEndpoint)
        matcher.releaseAll()
        zmq_ctx_term(context)
    }

    deinit { shutdown() }

    static func lastError(_ what: String) -> TransportError {
        TransportError.backend("ZeroMQ error \(what): \(String(cString: zmq_strerror(zmq_errno())))")
    }

    static func setOption(_ socket: UnsafeMutableRawPointer, _ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(socket, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw lastError("setting socket option \(option)")
        }
    }

    /// ZeroMQ leaves the file of a closed ipc socket behind.
    static func removeSocketFile(_ endpoint: String) {
        if endpoint.hasPrefix("ipc://") { unlink(String(endpoint.dropFirst("ipc://".count))) }
    }

    static func lastEndpoint(_ socket: UnsafeMutableRawPointer) throws -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var length = buffer.count
        guard zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &buffer, &length) == 0 else { throw lastError("reading bound endpoint") }
        return String(cString: buffer)
    }
}

extension ZMQTransport {
    /// ZeroMQ allocates every received message; glibc serves allocations above 128 KiB with
    /// a fresh mmap, so each chunk page-faults in and is unmapped again. Keeping them on the
    /// heap lets freed chunks be reused (measured: 4-rank ring busbw 0.5 → 0.87 GB/s at 64 MiB).
    /// Only for ranks that receive bytes over sockets: the setting is process-wide and changes
    /// how fast every other large allocation is (MPI_Allreduce's temporary buffer, say).
    static func keepLargeAllocationsOnTheHeap() {
        fleet_keep_allocations_on_heap(256 << 20, 1 << 30)
    }
}
