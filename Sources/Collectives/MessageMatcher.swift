import CZMQ

/// Takes over how a receive's chunks land: a receive relayed on to another rank as it arrives.
protocol ChunkRelay: AnyObject {
    /// Lands `bytes` (the message's bytes at `offset`) in `buffer` and/or sends them on.
    func land(_ bytes: UnsafeRawBufferPointer, at offset: Int, in buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp?)
}

/// Matches arriving ZeroMQ chunks and single-copy descriptors to posted receives with MPI's
/// rules: per (source, tag) in order; a message nobody waits for yet is kept (without
/// copying) until a receive is posted.
final class MessageMatcher {
    let rank: Int
    private var posted: [Int: [PostedReceive]] = [:]
    private var unexpected: [Int: [StashedMessage]] = [:]
    /// The message whose chunks are arriving from each source (chunks of one message are contiguous).
    private var assembling: [Int: Assembly] = [:]
    /// Receives matched to a descriptor the kernel would not let this rank read, by its id:
    /// their bytes arrive over the socket.
    private var awaitingFallback: [UInt64: PostedReceive] = [:]
    /// Copies a descriptor's bytes into a receive buffer; false when it could not.
    var pull: (WireHeader, UnsafeMutableRawBufferPointer) throws -> Bool = { _, _ in false }
    /// Completes a descriptor's send without reading it (its receive failed).
    var acknowledge: (WireHeader) throws -> Void = { _ in }

    init(rank: Int) { self.rank = rank }

    private final class PostedReceive {
        let request: Request
        let buffer: UnsafeMutableRawBufferPointer
        /// Set for a receive that combines the arriving floats into `buffer` instead of overwriting it.
        let reduce: ReduceOp?
        let relay: ChunkRelay?
        var received = 0
        init(_ request: Request, _ buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp? = nil, relay: ChunkRelay? = nil) {
            self.request = request
            self.buffer = buffer
            self.reduce = reduce
            self.relay = relay
        }

        /// Lands `bytes` at `offset`: copied, or combined (`buffer ⊕ bytes`, in that operand order),
        /// or handed to the relay.
        func land(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
            if let relay { return relay.land(bytes, at: offset, in: buffer, reduce: reduce) }
            MessageMatcher.land(bytes, at: offset, in: buffer, reduce: reduce)
        }
    }

    /// Writes a message's `bytes` at `offset` of `buffer`: copied, or combined with `reduce`
    /// (`buffer ⊕ bytes`, in that operand order: it fixes rounding).
    static func land(_ bytes: UnsafeRawBufferPointer, at offset: Int, in buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp?) {
        guard bytes.count > 0 else { return }
        guard let reduce else {
            (buffer.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            return
        }
        reduce.combine(into: buffer.baseAddress! + offset, from: bytes.baseAddress!, bytes: bytes.count)
    }

    private struct Chunk {
        let offset: Int
        let bytes: UnsafeRawBufferPointer
        /// The ZeroMQ message that owns `bytes`, or nil when fleet allocated them itself.
        let message: UnsafeMutablePointer<zmq_msg_t>?

        func release() {
            if let message {
                zmq_msg_close(message)
                message.deallocate()
            } else {
                UnsafeMutableRawBufferPointer(mutating: bytes).deallocate()
            }
        }
    }

    private final class StashedMessage {
        let tag: Int32
        let total: Int
        var received = 0
        var chunks: [Chunk] = []
        /// Set when the message is a single-copy descriptor (its bytes are still the sender's).
        var descriptor: WireHeader?
        init(tag: Int32, total: Int) {
            self.tag = tag
            self.total = total
        }
    }

    private enum Assembly {
        case posted(PostedReceive)
        case stashed(StashedMessage)
    }

    /// Posts a receive; with `reduce`, arriving floats are combined into `buffer`, with `relay`
    /// the relay lands them (both only for sources whose bytes are copied, not received by
    /// ZeroMQ straight into the buffer).
    func post(_ request: Request, buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp? = nil, relay: ChunkRelay? = nil) throws {
        let source = request.peer
        let receive = PostedReceive(request, buffer, reduce: reduce, relay: relay)
        guard let index = unexpected[source]?.firstIndex(where: { $0.tag == request.tag }) else {
            posted[source, default: []].append(receive)
            return
        }
        let stash = unexpected[source]!.remove(at: index)
        defer { stash.chunks.forEach { $0.release() } }
        if let descriptor = stash.descriptor {
            try match(descriptor, to: receive)
            return
        }
        guard stash.total == request.byteCount else {
            if case .stashed(let current) = assembling[source], current === stash { assembling[source] = nil }
            throw mismatch(request, sentBytes: stash.total)
        }
        for chunk in stash.chunks { receive.land(chunk.bytes, at: chunk.offset) }
        receive.received = stash.received
        if stash.received == stash.total {
            request.isComplete = true
        } else {
            assembling[source] = .posted(receive)
        }
    }

    /// A single-copy descriptor: its bytes are copied into the matching receive now, or when
    /// one is posted.
    func deliverDescriptor(_ descriptor: WireHeader) throws {
        let source = Int(descriptor.source)
        if let index = posted[source]?.firstIndex(where: { $0.request.tag == descriptor.tag }) {
            try match(descriptor, to: posted[source]!.remove(at: index))
            return
        }
        let stash = StashedMessage(tag: descriptor.tag, total: Int(descriptor.total))
        stash.descriptor = descriptor
        unexpected[source, default: []].append(stash)
    }

    private func match(_ descriptor: WireHeader, to receive: PostedReceive) throws {
        guard receive.request.byteCount == Int(descriptor.total) else {
            try acknowledge(descriptor)
            throw mismatch(receive.request, sentBytes: Int(descriptor.total))
        }
        if try pull(descriptor, receive.buffer) {
            receive.received = receive.buffer.count
            receive.request.isComplete = true
        } else {
            awaitingFallback[descriptor.id] = receive
        }
    }

    /// Consumes the data frame that follows `header` on `socket`.
    func deliver(_ header: WireHeader, from socket: UnsafeMutableRawPointer) throws {
        let source = Int(header.source), offset = Int(header.offset)
        switch try target(of: header, discard: { discardFrame(socket) }) {
        case .posted(let receive):
            let room = receive.buffer.count - offset
            let length = zmq_recv(socket, room > 0 ? receive.buffer.baseAddress! + offset : nil, room, 0)
            guard length >= 0, length <= room else {
                throw TransportError.backend("rank \(rank): malformed chunk from rank \(source)")
            }
            arrived(Int(length), for: receive, from: source)
        case .stashed(let stash):
            let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
            zmq_msg_init(message)
            guard zmq_msg_recv(message, socket, 0) >= 0 else {
                message.deallocate()
                throw ZMQTransport.lastError("receiving a chunk from rank \(source)")
            }
            let bytes = UnsafeRawBufferPointer(start: zmq_msg_data(message), count: zmq_msg_size(message))
            stash.chunks.append(Chunk(offset: offset, bytes: bytes, message: message))
            arrived(bytes.count, for: stash, from: source)
        }
    }

    /// A chunk whose bytes this rank may only borrow (a shared-memory slot): they are copied
    /// into the matching receive, or into a stash of their own.
    func deliver(_ header: WireHeader, copying bytes: UnsafeRawBufferPointer) throws {
        let source = Int(header.source), offset = Int(header.offset)
        switch try target(of: header, discard: {}) {
        case .posted(let receive):
            guard offset + bytes.count <= receive.buffer.count else {
                throw TransportError.backend("rank \(rank): malformed chunk from rank \(source)")
            }
            receive.land(bytes, at: offset)
            arrived(bytes.count, for: receive, from: source)
        case .stashed(let stash):
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
            if bytes.count > 0 { copy.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            stash.chunks.append(Chunk(offset: offset, bytes: UnsafeRawBufferPointer(copy), message: nil))
            arrived(bytes.count, for: stash, from: source)
        }
    }

    private func arrived(_ count: Int, for receive: PostedReceive, from source: Int) {
        receive.received += count
        if receive.received == receive.request.byteCount {
            receive.request.isComplete = true
            assembling[source] = nil
        }
    }

    private func arrived(_ count: Int, for stash: StashedMessage, from source: Int) {
        stash.received += count
        if stash.received == stash.total { assembling[source] = nil }
    }

    /// Where the chunk that `header` announces goes: the receive or stash of its message. A
    /// message whose size differs from its receive's is an error (after `discard` of its bytes).
    private func target(of header: WireHeader, discard: () -> Void) throws -> Assembly {
        let source = Int(header.source)
        let total = Int(header.total)
        let offset = Int(header.offset)
        let target: Assembly
        if header.kind == WireHeader.fallbackData && offset == 0 {
            guard let receive = awaitingFallback.removeValue(forKey: header.id) else {
                throw TransportError.backend("rank \(rank) got the bytes of single-copy message \(header.id) from rank \(source) that it never refused")
            }
            target = .posted(receive)
            assembling[source] = target
        } else if offset == 0 {
            if let index = posted[source]?.firstIndex(where: { $0.request.tag == header.tag }) {
                let receive = posted[source]!.remove(at: index)
                guard receive.request.byteCount == total else {
                    discard()
                    throw mismatch(receive.request, sentBytes: total)
                }
                target = .posted(receive)
            } else {
                let stash = StashedMessage(tag: header.tag, total: total)
                unexpected[source, default: []].append(stash)
                target = .stashed(stash)
            }
            assembling[source] = target
        } else {
            guard let current = assembling[source] else {
                throw TransportError.backend("rank \(rank) got a chunk at offset \(offset) from rank \(source) with no message start")
            }
            target = current
        }
        return target
    }

    /// A send to oneself: matched at once, or kept as a private copy.
    func deliverLocal(_ data: UnsafeRawBufferPointer, tag: Int32) throws {
        if let index = posted[rank]?.firstIndex(where: { $0.request.tag == tag }) {
            let receive = posted[rank]!.remove(at: index)
            guard receive.request.byteCount == data.count else { throw mismatch(receive.request, sentBytes: data.count) }
            if data.count > 0 { receive.buffer.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: data.count) }
            receive.request.isComplete = true
            return
        }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 16)
        if data.count > 0 { copy.baseAddress!.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        let stash = StashedMessage(tag: tag, total: data.count)
        stash.chunks = [Chunk(offset: 0, bytes: UnsafeRawBufferPointer(copy), message: nil)]
        stash.received = data.count
        unexpected[rank, default: []].append(stash)
    }

    /// Whether any posted receive is still waiting for (part of) its message.
    var isWaiting: Bool { posted.values.contains { !$0.isEmpty } || !assembling.isEmpty || !awaitingFallback.isEmpty }

    /// The oldest receive still waiting on `peer`, if any.
    func pendingReceive(from peer: Int) -> Request? {
        if case .posted(let receive) = assembling[peer] { return receive.request }
        return posted[peer]?.first?.request ?? awaitingFallback.values.first { $0.request.peer == peer }?.request
    }

    func releaseAll() {
        for stashes in unexpected.values { for stash in stashes { stash.chunks.forEach { $0.release() } } }
        unexpected.removeAll()
        posted.removeAll()
        assembling.removeAll()
        awaitingFallback.removeAll()
    }

    private func discardFrame(_ socket: UnsafeMutableRawPointer) {
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        zmq_msg_recv(&message, socket, 0)
        zmq_msg_close(&message)
    }

    private func mismatch(_ request: Request, sentBytes: Int) -> TransportError {
        .sizeMismatch(operation: "receive (tag \(request.tag))", receiver: rank, expectedBytes: request.byteCount,
                      sender: request.peer, sentBytes: sentBytes)
    }
}
