import CFleetSys

/// How a sender writes shared-memory slots to each peer: plain stores where the reader shares
/// its cache (the slot never leaves it), streaming (non-temporal) stores while plain copies
/// crawl because it does not (see `SharedMemoryLanes`). Plain copies are timed; after
/// `slowSlotsToStream` slow ones in a row to a peer its slots stream, and every
/// `probeInterval` streamed slots plain ones are tried again, since the placement changes
/// while a job runs.
struct SlotStores {
    /// Copies into plain slots slower than this mean the reader's cache is not shared.
    static let farBytesPerSecond = 5e9
    /// Slow plain slots in a row before the sender streams (one slow copy can be a page
    /// touched for the first time).
    static let slowSlotsToStream = 4
    /// Slots smaller than this are not timed (their copy is mostly overhead). Low enough that
    /// a job of small messages alone still finds out: timing only from 64 KiB, 2-rank
    /// all-reduces of 64 KiB (32 KiB messages) ran 36 µs while the vCPUs sat apart (0.87–0.89×
    /// MPI_Allreduce), where 128 KiB ones, whose messages were timed and streamed, ran 16;
    /// timed from 16 KiB they stream too and run 10 µs (3.3×), and nothing streams while the
    /// vCPUs share a cache.
    static let timedSlotBytes = 16 << 10
    /// Streamed slots between two probes of plain ones.
    static let probeInterval = 128

    let mode: SharedMemoryLanes.Geometry.Stores
    /// Per peer: plain slots in a row that copied slowly, and streamed slots since the last probe.
    private var slowPlainSlots: [Int]
    private var streamedSinceProbe: [Int]
    /// Slots written each way (for reports and tests).
    private(set) var plainSlots = 0, streamedSlots = 0

    init(mode: SharedMemoryLanes.Geometry.Stores, worldSize: Int) {
        self.mode = mode
        slowPlainSlots = Array(repeating: 0, count: worldSize)
        streamedSinceProbe = Array(repeating: 0, count: worldSize)
    }

    /// Whether slots to `peer` are written with streaming stores now.
    func streams(to peer: Int) -> Bool {
        mode == .stream || (mode == .auto && slowPlainSlots[peer] >= Self.slowSlotsToStream)
    }

    /// Copies a chunk into a slot to `peer`, streamed or plain as `streams(to:)` says, and counts it.
    mutating func copy(_ source: UnsafeRawPointer, into slot: UnsafeMutableRawPointer, bytes: Int, peer: Int) {
        let streaming = streams(to: peer)
        count(to: peer, bytes: bytes, streamed: streaming, nanoseconds: Self.store(source, into: slot, bytes: bytes, streaming: streaming))
    }

    /// Writes `bytes` into a slot; returns how long a plain write took (0 for a streamed one).
    static func store(_ source: UnsafeRawPointer, into slot: UnsafeMutableRawPointer, bytes: Int, streaming: Bool) -> UInt64 {
        if streaming {
            fleet_stream_copy(slot, source, bytes)
            return 0
        }
        let start = fleet_now_ns()
        slot.copyMemory(from: source, byteCount: bytes)
        return fleet_now_ns() - start
    }

    /// Counts a slot of `bytes` written to `peer`; a plain one that took `nanoseconds` may turn
    /// its slots to streaming, and every `probeInterval` streamed ones turn them back for a try.
    mutating func count(to peer: Int, bytes: Int, streamed: Bool, nanoseconds: UInt64) {
        if streamed {
            streamedSlots += 1
            let count = streamedSinceProbe[peer] + 1
            streamedSinceProbe[peer] = count
            if count >= Self.probeInterval {
                streamedSinceProbe[peer] = 0
                slowPlainSlots[peer] = Self.slowSlotsToStream - 1
            }
            return
        }
        plainSlots += 1
        guard mode == .auto, bytes >= Self.timedSlotBytes else { return }
        let slow = Double(bytes) / max(1, Double(nanoseconds)) * 1e9 < Self.farBytesPerSecond
        slowPlainSlots[peer] = slow ? slowPlainSlots[peer] + 1 : 0
    }
}
