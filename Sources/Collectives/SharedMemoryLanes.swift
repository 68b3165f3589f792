import CFleetSys
import Foundation

/// Point-to-point lanes through shared memory between the ranks of one host, used by the MPI
/// and ZeroMQ transports for every message between such ranks (all of them, so that messages
/// of one source and tag stay in order).
///
/// Each rank creates one POSIX shared-memory segment holding a lane to every other local
/// rank: a ring of fixed slots with a head (advanced by the sender) and a tail (advanced by
/// the receiver). A sender copies its message into free slots, chunk by chunk; the receiver
/// copies each chunk straight into the posted receive buffer. Both copies are plain memcpy
/// through slots that stay in cache, with no system call per message: cross-memory attach
/// (`process_vm_readv`, MPI's and fleet's single copy) pays the kernel for every page and
/// measured 5–13 GB/s here against memcpy's 13–49.
///
/// Where the two cores share a cache, plain stores are fastest (the slot never leaves the
/// cache). Where they do not (a VM whose virtual CPUs the host moves between core complexes,
/// measured here: cross-core round trips of 350 ns instead of 50–90), every line the sender
/// writes must first be taken back from the reader's cache and plain slots crawl at 2–4 GB/s
/// (the reader's copies stay at 10–23); non-temporal stores skip that and go through memory
/// at 8–14 GB/s. The sender times its plain copies and streams while they are slow, trying
/// plain ones again now and then, since the placement changes while a job runs (`SlotStores`).
///
/// A ring passes most of what it receives on to the next rank: such a receive is relayed
/// (`irecvForwarding`), each arriving chunk written (combined with the receiver's buffer
/// first when reducing) straight from its slot into a slot onward, instead of landing in the
/// buffer and being copied out of it again later.
///
/// A rank with nothing to do spins a while, then sleeps on a futex doorbell in its own
/// segment that peers ring when they fill a slot for it or free one of its. With a core to
/// itself it spins 50 µs; with more ranks than cores it yields its core between looks for
/// up to 5 ms after it last moved anything (`FLEET_SHM_YIELD_NS`): waits inside a collective
/// are shorter, and waking a sleeper costs more than a yield (4 ranks on 2 cores, 64–512 KiB
/// all-reduce: 1.5–1.9× MPI_Allreduce yielding, 0.65–0.9× sleeping at once; gpt-tiny dp2·pp2
/// trains at the same rate either way). Streams of tiny messages pay for it: yields hand the
/// core over a slot at a time, and the conformance suite's 12-byte chunks take 7.8 s on 4
/// ranks against 2.5 s sleeping at once. Ranks that yield forever would keep taking turns on
/// the cores the busy ranks need (the 4-rank conformance run: 21 s, against 2 s).
///
/// Segments are unlinked as soon as every peer has mapped them, so a crash leaves nothing
/// in /dev/shm. `SharedMemoryTransport` puts the lanes in front of MPI or ZeroMQ.
public final class SharedMemoryLanes {
    private static let counterBytes = 128
    private static let slotHeaderBytes = 64
    /// A slot's header: the message's `WireHeader`, then the length of the chunk the slot holds.
    private static let chunkLengthOffset: Int = {
        let offset = (MemoryLayout<WireHeader>.size + 7) & ~7
        precondition(offset + 8 <= slotHeaderBytes, "a slot header holds a WireHeader and a chunk length")
        return offset
    }()
    /// Each segment starts with its owner's doorbell (offset 0) and sleeping flag (offset 64).
    static let controlBytes = 128
    /// How long a rank spins before it sleeps: with a core to itself, and yielding the core
    /// between looks when ranks outnumber cores.
    static let spinNanoseconds: UInt64 = 50_000
    static let yieldingNanoseconds: UInt64 = UInt64(ProcessInfo.processInfo.environment["FLEET_SHM_YIELD_NS"].flatMap(Int.init) ?? 5_000_000)
    /// Relayed chunks are combined and copied on in pieces this large, so the piece just
    /// written is still in L1 when it is copied on.
    static let relayTileBytes = 16 << 10

    let rank: Int
    let worldSize: Int
    let geometry: Geometry
    /// World ranks on this host (this one included), in rank order; lanes are indexed by position here.
    let localRanks: [Int]
    /// More ranks on this machine than cores: a waiting rank yields its core.
    let oversubscribed: Bool
    /// Each local rank's position in `localRanks` (its lane's index in every segment).
    private let laneIndex: [Int]
    private let laneBytes: Int
    private let slotStride: Int
    private let own: UnsafeMutableRawPointer
    private let segmentBytes: Int
    private var peerSegments: [UnsafeMutableRawPointer?]
    /// Peers whose lanes both sides set up, in rank order, and the same as a flag per rank.
    private(set) var served: [Int] = []
    private var servesRank: [Bool]
    let matcher: MessageMatcher
    private var queues: [[OutgoingSend]]
    /// A small buffer (in L1) where relayed chunks are combined when the buffer must not change.
    private let relayTile = UnsafeMutableRawBufferPointer.allocate(byteCount: SharedMemoryLanes.relayTileBytes, alignment: 64)
    /// How slots to each peer are written (plain or streaming stores), and how many were.
    private var stores: SlotStores
    /// Relayed chunks written into a slot straight from the slot they arrived in, and those
    /// that landed in the buffer first (other sends queued, or the lane was full).
    private(set) var relayedSlots = 0, bufferedRelays = 0

    private final class OutgoingSend {
        let request: Request
        let data: UnsafeRawBufferPointer
        var offset = 0
        /// Bytes of `data` ready to go (a relayed message's bytes that have landed so far).
        var available: Int
        init(_ request: Request, _ data: UnsafeRawBufferPointer, available: Int? = nil) {
            self.request = request
            self.data = data
            self.available = available ?? data.count
        }
    }

    /// A receive relayed on to another rank: each arriving chunk is written (combined with the
    /// buffer first when reducing) straight into a free slot to that rank, while nothing else
    /// queues to it; otherwise it lands in the buffer and a send from there queues behind
    /// the others. The send joins the queue only once its first bytes arrived, so it never
    /// holds up other sends while it waits for bytes that come only when its receive's owner
    /// gets to it.
    private final class Relay: ChunkRelay {
        unowned let lanes: SharedMemoryLanes
        let peer: Int
        let keep: Bool
        let send: OutgoingSend
        var queued = false
        init(_ lanes: SharedMemoryLanes, to peer: Int, send: OutgoingSend, keep: Bool) {
            self.lanes = lanes
            self.peer = peer
            self.send = send
            self.keep = keep
        }

        func land(_ bytes: UnsafeRawBufferPointer, at offset: Int, in buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp?) {
            if lanes.relayDirectly(self, bytes, at: offset, from: buffer, reduce: reduce) { return }
            MessageMatcher.land(bytes, at: offset, in: buffer, reduce: reduce)
            send.available = offset + bytes.count
            lanes.bufferedRelays += 1
            if !queued {
                queued = true
                lanes.queues[peer].append(send)
            }
            if lanes.queues[peer].first === send { lanes.push(peer) }
        }
    }

    init(rank: Int, worldSize: Int, localRanks: [Int], ranksOnMachine: Int, geometry: Geometry, segment: UnsafeMutableRawPointer, segmentBytes: Int) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRanks = localRanks
        oversubscribed = Self.oversubscribed(ranksOnHost: ranksOnMachine)
        // Per-rank tables are arrays indexed by world rank: they are read for every slot.
        var laneIndex = [Int](repeating: -1, count: worldSize)
        for (index, local) in localRanks.enumerated() { laneIndex[local] = index }
        self.laneIndex = laneIndex
        peerSegments = Array(repeating: nil, count: worldSize)
        queues = Array(repeating: [], count: worldSize)
        stores = SlotStores(mode: geometry.stores, worldSize: worldSize)
        servesRank = Array(repeating: false, count: worldSize)
        self.geometry = geometry
        slotStride = Self.slotHeaderBytes + geometry.slotBytes
        laneBytes = Self.counterBytes + geometry.slots * slotStride
        own = segment
        self.segmentBytes = segmentBytes
        matcher = MessageMatcher(rank: rank)
    }

    static func laneBytes(_ geometry: Geometry) -> Int { counterBytes + geometry.slots * (slotHeaderBytes + geometry.slotBytes) }

    /// When this rank began finding nothing to do (0 while busy). Any pass that moves bytes
    /// clears it, not only those inside `idle`: requests usually complete in the transport's
    /// `test`, and a stale start would send the next wait straight to sleep.
    private var idleSince: UInt64 = 0

    /// Starts using the lane to `peer`, whose segment is mapped at `segment`.
    func adopt(_ peer: Int, segment: UnsafeMutableRawPointer) {
        peerSegments[peer] = segment
        served = (served + [peer]).sorted()
        servesRank[peer] = true
    }

    // MARK: messages

    func serves(_ peer: Int) -> Bool { peer >= 0 && peer < worldSize && servesRank[peer] }

    func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) -> Request {
        let request = Request(kind: .send, peer: peer, tag: tag, byteCount: data.count)
        queues[peer].append(OutgoingSend(request, data))
        if queues[peer].count == 1 { push(peer) }
        return request
    }

    /// A receive through the lane from `peer`; with `reduce`, arriving floats are combined into `buffer`.
    func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32, reduce: ReduceOp? = nil) throws -> Request {
        let request = Request(kind: .receive, peer: peer, tag: tag, byteCount: buffer.count)
        try matcher.post(request, buffer: buffer, reduce: reduce)
        return request
    }

    /// `Transport.irecvReducing` for the transports that carry lanes: nil unless `peer` is served.
    func irecvReducing(into buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, from peer: Int, tag: Int32) throws -> Request? {
        guard serves(peer) else { return nil }
        return try irecv(into: UnsafeMutableRawBufferPointer(buffer), from: peer, tag: tag, reduce: op)
    }

    /// `Transport.irecvForwarding`: a receive from `peer` relayed on to `next` as its chunks
    /// arrive (see `Relay`); nil unless both are served.
    func irecvForwarding(into floats: UnsafeMutableBufferPointer<Float>, op: ReduceOp?, from peer: Int, tag: Int32,
                         to next: Int, forwardTag: Int32, keep: Bool) throws -> (receive: Request, forward: Request)? {
        guard serves(peer), serves(next) else { return nil }
        let buffer = UnsafeMutableRawBufferPointer(floats)
        let receive = Request(kind: .receive, peer: peer, tag: tag, byteCount: buffer.count)
        let forward = Request(kind: .send, peer: next, tag: forwardTag, byteCount: buffer.count)
        let relay = Relay(self, to: next, send: OutgoingSend(forward, UnsafeRawBufferPointer(buffer), available: 0), keep: keep)
        try matcher.post(receive, buffer: buffer, reduce: op, relay: relay)
        return (receive, forward)
    }

    /// Writes a relayed chunk into the next slot to the relay's peer, straight from the slot
    /// it arrived in; false (nothing written) when other sends queue to that peer before it,
    /// part of it still waits in the buffer, or no slot is free.
    private func relayDirectly(_ relay: Relay, _ bytes: UnsafeRawBufferPointer, at offset: Int,
                               from buffer: UnsafeMutableRawBufferPointer, reduce: ReduceOp?) -> Bool {
        let peer = relay.peer, send = relay.send
        let atHead = queues[peer].first === send
        guard atHead ? send.offset == send.available : queues[peer].isEmpty,
              send.offset == offset, bytes.count <= geometry.slotBytes, bytes.count > 0 else { return false }
        let lane = lane(own, laneIndex[peer])
        let next = head(lane).pointee
        guard next - fleet_load_acquire(tail(lane)) < UInt64(geometry.slots) else { return false }
        let slot = slot(lane, next)
        stamp(slot, send, offset: offset, length: bytes.count)
        let stream = stores.streams(to: peer)
        var storeNanoseconds: UInt64 = 0
        var done = 0
        while done < bytes.count {
            let length = min(Self.relayTileBytes, bytes.count - done)
            let incoming = UnsafeRawPointer(bytes.baseAddress! + done), mine = buffer.baseAddress! + offset + done
            // The piece to copy on: the buffer itself when it keeps the result, else the tile.
            let piece: UnsafeRawPointer
            if let reduce {
                // Combined in place (the in-place loop vectorizes); into a copy in L1 when the
                // buffer must keep its values.
                let target = relay.keep ? mine : relayTile.baseAddress!
                if !relay.keep { target.copyMemory(from: mine, byteCount: length) }
                reduce.combine(into: target, from: incoming, bytes: length)
                piece = UnsafeRawPointer(target)
            } else if relay.keep {
                mine.copyMemory(from: incoming, byteCount: length)
                piece = UnsafeRawPointer(mine)
            } else {
                piece = incoming
            }
            storeNanoseconds += SlotStores.store(piece, into: slot + Self.slotHeaderBytes + done, bytes: length, streaming: stream)
            done += length
        }
        stores.count(to: peer, bytes: bytes.count, streamed: stream, nanoseconds: storeNanoseconds)
        relayedSlots += 1
        fleet_store_release(head(lane), next + 1)
        send.offset += bytes.count
        send.available = max(send.available, send.offset)
        if send.offset == send.data.count {
            send.request.markComplete()
            if atHead {
                queues[peer].removeFirst()
                push(peer)
            }
        } else if !atHead {
            // The receiver assembles one message at a time from this lane: the rest of this
            // one goes before anything else, so it holds the head of the queue from now on.
            relay.queued = true
            queues[peer].append(send)
        }
        ring(peer)
        return true
    }

    /// Whether anything waits on these lanes (a queued send or a posted receive).
    var hasPendingWork: Bool { queues.contains { !$0.isEmpty } || matcher.isWaiting }

    /// A send still queued to `peer`, if any.
    func pendingSend(to peer: Int) -> Request? { queues[peer].first?.request }

    /// Moves whatever can move: queued sends into free slots, arrived chunks into receives.
    @discardableResult
    func progress() throws -> Bool {
        var moved = false
        // Arrivals first: what they relay or free is pushed in the same pass, whatever the
        // order of the peers.
        for peer in served { moved = try pull(peer) || moved }
        for peer in served where !queues[peer].isEmpty { moved = push(peer) || moved }
        if moved { idleSince = 0 }
        return moved
    }

    private func lane(_ base: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutableRawPointer { base + Self.controlBytes + index * laneBytes }
    private func doorbell(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt32> { base.assumingMemoryBound(to: UInt32.self) }
    private func sleeping(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt32> { (base + 64).assumingMemoryBound(to: UInt32.self) }

    /// Wakes `peer` if it sleeps: a slot for it was filled, or one of its was freed.
    private func ring(_ peer: Int) {
        guard let segment = peerSegments[peer] else { return }
        fleet_doorbell_ring(doorbell(segment), sleeping(segment))
    }

    /// Whether every other rank of the world is on this host (else the transport's own
    /// messages need looking at often, and a wait on the lanes naps only briefly).
    var reachesEveryPeer: Bool { served.count == worldSize - 1 }

    /// Waits for something to move on these lanes: spins while this rank has a core to
    /// itself and has been idle less than `spinNanoseconds`, then sleeps on its doorbell (rung
    /// by any peer that fills or frees a slot) for at most `maxWait`, and at most 20 ms, or
    /// 200 µs while the transport also waits on ranks elsewhere.
    func idle(maxWait: Duration) throws {
        if try progress() { return }
        let now = fleet_now_ns()
        if idleSince == 0 { idleSince = now }
        if now - idleSince < (oversubscribed ? Self.yieldingNanoseconds : Self.spinNanoseconds) {
            if oversubscribed { sched_yield() } else { fleet_cpu_relax() }
            return
        }
        let seen = fleet_doorbell_read(doorbell(own))
        fleet_flag_store(sleeping(own), 1)
        defer { fleet_flag_store(sleeping(own), 0) }
        // A peer that rang before the flag was up is seen here; one that rings after wakes the futex.
        if try progress() { return }
        let nap = reachesEveryPeer ? min(maxWait, .milliseconds(20)) : .microseconds(200)
        fleet_doorbell_sleep(doorbell(own), seen, max(1_000, UInt64(max(0, nap.seconds) * 1e9)))
    }
    private func head(_ lane: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64> { lane.assumingMemoryBound(to: UInt64.self) }
    private func tail(_ lane: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64> { (lane + 64).assumingMemoryBound(to: UInt64.self) }
    private func slot(_ lane: UnsafeMutableRawPointer, _ sequence: UInt64) -> UnsafeMutableRawPointer {
        lane + Self.counterBytes + Int(sequence % UInt64(geometry.slots)) * slotStride
    }

    /// Copies queued chunks to `peer` into free slots of this rank's lane to it.
    @discardableResult
    private func push(_ peer: Int) -> Bool {
        let lane = lane(own, laneIndex[peer])
        var next = head(lane).pointee
        var free = UInt64(geometry.slots) - (next - fleet_load_acquire(tail(lane)))
        var moved = false
        while let send = queues[peer].first {
            // A relayed message waits here for its next bytes (an empty message goes at once).
            if send.offset == send.available && send.data.count > 0 { break }
            if free == 0 {
                free = UInt64(geometry.slots) - (next - fleet_load_acquire(tail(lane)))
                if free == 0 { break }
            }
            let length = min(geometry.slotBytes, send.available - send.offset)
            let slot = slot(lane, next)
            stamp(slot, send, offset: send.offset, length: length)
            if length > 0 { stores.copy(send.data.baseAddress! + send.offset, into: slot + Self.slotHeaderBytes, bytes: length, peer: peer) }
            next += 1
            free -= 1
            fleet_store_release(head(lane), next)
            send.offset += length
            moved = true
            if send.offset == send.data.count {
                send.request.markComplete()
                queues[peer].removeFirst()
            }
        }
        if moved { ring(peer) }
        return moved
    }

    /// Writes a slot's header: which message (source, tag, size) and which of its bytes it holds.
    private func stamp(_ slot: UnsafeMutableRawPointer, _ send: OutgoingSend, offset: Int, length: Int) {
        var header = WireHeader(source: Int32(rank), tag: send.request.tag, total: UInt64(send.data.count), offset: UInt64(offset))
        withUnsafeBytes(of: &header) { slot.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        (slot + Self.chunkLengthOffset).storeBytes(of: UInt64(length), as: UInt64.self)
    }

    /// Hands every chunk that arrived from `peer` to the matcher and frees its slot.
    private func pull(_ peer: Int) throws -> Bool {
        guard let segment = peerSegments[peer] else { return false }
        let lane = lane(segment, laneIndex[rank])
        var next = tail(lane).pointee
        let end = fleet_load_acquire(head(lane))
        guard next < end else { return false }
        while next < end {
            let slot = slot(lane, next)
            var header = WireHeader(source: 0, tag: 0, total: 0)
            withUnsafeMutableBytes(of: &header) { $0.baseAddress!.copyMemory(from: slot, byteCount: $0.count) }
            let length = Int((slot + Self.chunkLengthOffset).load(as: UInt64.self))
            guard Int(header.source) == peer, length <= geometry.slotBytes else {
                throw TransportError.backend("rank \(rank): corrupt shared-memory slot from rank \(peer)")
            }
            try matcher.deliver(header, copying: UnsafeRawBufferPointer(start: slot + Self.slotHeaderBytes, count: length))
            next += 1
            fleet_store_release(tail(lane), next)
        }
        ring(peer)
        return true
    }

    /// How this rank's slots went out: plain or streamed stores, relays direct or buffered.
    var report: String {
        "rank \(rank): shared-memory slots sent plain \(stores.plainSlots), streamed \(stores.streamedSlots); "
            + "relayed \(relayedSlots) directly, \(bufferedRelays) through the buffer"
    }

    private var released = false

    /// Unmaps every segment and fails nothing further: the lanes are not used after this.
    func release() {
        guard !released else { return }
        released = true
        for address in peerSegments.compactMap({ $0 }) { munmap(address, segmentBytes) }
        munmap(own, segmentBytes)
        matcher.releaseAll()
        relayTile.deallocate()
    }

    deinit { release() }
}
