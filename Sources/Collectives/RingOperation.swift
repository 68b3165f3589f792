/// The ring engine behind ring all-reduce, reduce-scatter and all-gather, as a resumable
/// operation: `advance()` does whatever needs no waiting and returns, so a caller can
/// interleave it with compute (gradient buckets during the backward pass); `finish()`
/// waits for the rest under the transport's deadline.
///
/// At global step `g` this rank sends segment `(rank + shift - 1 - g) mod n` to its right
/// neighbour and receives segment `(rank + shift - 2 - g) mod n` from its left; steps below
/// `n - 1` combine what arrives (reduce-scatter), later ones store it (all-gather). After
/// the reduce-scatter steps, segment `(rank + shift) mod n` is complete here.
///
/// Segments travel in chunks, loop by loop (loop c carries part c of every segment through
/// all the steps), and a chunk is forwarded as soon as it has arrived and been combined, so
/// consecutive steps overlap (pipelining). Where the transport can relay (shared-memory
/// lanes), an arriving chunk is combined or copied straight into the slot to the right,
/// landing in the buffer only where it must stay: one pass over each relayed byte instead of
/// three. Elsewhere reduce-scatter chunks are combined as they arrive where the transport can,
/// else they land in a few reused staging slots that stay in cache, instead of a staging
/// copy of the whole segment: above L3 size that halves the memory traffic of a step.
public final class RingOperation {
    private struct Item { let step: Int; let range: Range<Int> }

    private let communicator: Communicator
    private let data: UnsafeMutableBufferPointer<Float>
    private let op: ReduceOp
    private let tag: Int32
    private let name: String
    private let right: Int, left: Int
    private let reduceSteps: Int
    private let lastStep: Int
    private let chunk: Int
    private let firstStep: Int
    /// Whether each step has its own tag (then items go loop by loop, see `init`).
    private let perStepTags: Bool
    /// This rank's own chunks that start the ring, by the index of the item before which each goes.
    private let firstSends: [(item: Int, range: Range<Int>)]
    private var nextFirstSend = 0
    private static let slots = 4
    private let items: [Item]
    private let staging: UnsafeMutableBufferPointer<Float>
    private var receives: [Request?]
    /// Receives that combine on arrival (nothing left to combine when they complete).
    private var combinedOnArrival: [Bool]
    /// For receives the transport relays on to the right as they arrive: that send.
    private var relays: [Request?]
    /// Sends still in flight, by the first element of the chunk they read.
    private var pendingSends: [Int: [Request]] = [:]
    private var posted = 0
    private var consumed = 0
    private var finished = false
    /// Called once when the operation completes (e.g. to divide for an average).
    private let completion: () -> Void

    init(_ communicator: Communicator, data: UnsafeMutableBufferPointer<Float>, partition: BlockPartition, shift: Int,
         steps: Range<Int>, op: ReduceOp, tag: Int32, name: String, completion: @escaping () -> Void = {}) throws {
        self.communicator = communicator
        self.data = data
        self.op = op
        self.tag = tag
        self.name = name
        self.completion = completion
        let n = communicator.size, rank = communicator.rank
        right = (rank + 1) % n
        left = (rank + n - 1) % n
        reduceSteps = n - 1
        lastStep = steps.upperBound
        firstStep = steps.lowerBound
        let chunk = max(1, communicator.chunkBytes / MemoryLayout<Float>.stride)
        self.chunk = chunk
        func segment(_ offset: Int) -> Int { ((rank + shift + offset) % n + n) % n }
        func chunks(_ seg: Int) -> [Range<Int>] {
            let r = partition.range(seg)
            return stride(from: r.lowerBound, to: r.upperBound, by: chunk).map { $0..<min($0 + chunk, r.upperBound) }
        }
        // Every step has a tag of its own where the collective's tag leaves room (8 bits).
        perStepTags = steps.upperBound <= 256
        var items: [Item] = []
        var firstSends: [(item: Int, range: Range<Int>)] = []
        if n > 1 && perStepTags {
            // Loop by loop (NCCL's order): every segment is cut into as many parts as the largest
            // needs chunks, and loop c takes part c of each through all the steps. A loop's first
            // send goes out when its first receive is posted, so a rank's sends are never stuck
            // behind a whole segment of its own, and relayed chunks find the lane to the right free.
            let loops = max(1, (partition.largest + chunk - 1) / chunk)
            func part(_ seg: Int, _ c: Int) -> Range<Int> {
                let r = partition.range(seg), p = BlockPartition(count: r.count, parts: loops).range(c)
                return (r.lowerBound + p.lowerBound)..<(r.lowerBound + p.upperBound)
            }
            for c in 0..<loops {
                let first = part(segment(-1 - steps.lowerBound), c)
                if !first.isEmpty { firstSends.append((items.count, first)) }
                for g in steps where !part(segment(-2 - g), c).isEmpty { items.append(Item(step: g, range: part(segment(-2 - g), c))) }
            }
        } else if n > 1 {
            // Step by step, all first sends at once: messages of one phase share a tag, so they
            // must leave in the order they are received.
            firstSends = chunks(segment(-1 - steps.lowerBound)).map { (0, $0) }
            for g in steps { items += chunks(segment(-2 - g)).map { Item(step: g, range: $0) } }
        }
        self.items = items
        self.firstSends = firstSends
        receives = Array(repeating: nil, count: items.count)
        combinedOnArrival = Array(repeating: false, count: items.count)
        relays = Array(repeating: nil, count: items.count)
        staging = communicator.scratch.borrow(Self.slots * min(chunk, max(1, partition.largest)))
        guard n > 1, !steps.isEmpty else { return }
        try sendFirst(upTo: 0)
        try postAhead(blocking: false)
    }

    /// Messages of different steps (or at least phases) carry different tags, so a window of
    /// posted receives can never match a message of another step.
    private func phaseTag(_ g: Int) -> Int32 {
        perStepTags ? tag | Int32(g) : (g < reduceSteps ? tag : tag | 1)
    }

    /// Starts the first sends (this rank's own segment) of the loops whose first receive is
    /// about to be posted (item index up to `item`), and of loops with no receives at all.
    private func sendFirst(upTo item: Int) throws {
        while nextFirstSend < firstSends.count && (firstSends[nextFirstSend].item <= item || firstSends[nextFirstSend].item >= items.count) {
            let range = firstSends[nextFirstSend].range
            pendingSends[range.lowerBound, default: []].append(
                try communicator.isend(data.slice(range).readOnly, to: right, tag: phaseTag(firstStep)))
            nextFirstSend += 1
        }
    }

    private func stagingSlot(_ index: Int, count: Int) -> UnsafeMutableBufferPointer<Float> {
        let slot = index % Self.slots, width = staging.count / Self.slots
        return staging.slice((slot * width)..<(slot * width + count))
    }

    /// Keeps up to `slots` reduce-scatter chunks (and a few all-gather chunks) posted ahead of use.
    /// An all-gather chunk overwrites its segment, so an earlier send from that chunk must be
    /// finished first; that is waited for only when the chunk is needed next (`blocking`), never
    /// ahead of time: the neighbour may not have room to receive it yet, and waiting could
    /// deadlock the ring. Returns false when it stopped for a send that is still in flight.
    @discardableResult
    private func postAhead(blocking: Bool) throws -> Bool {
        while posted < items.count && posted - consumed < (items[posted].step < reduceSteps ? Self.slots : 2 * Self.slots) {
            try sendFirst(upTo: posted)
            let item = items[posted]
            let target: UnsafeMutableBufferPointer<Float>
            if item.step >= reduceSteps, let sends = pendingSends[item.range.lowerBound] {
                // An all-gather chunk overwrites its segment: earlier sends from it must be done.
                if blocking && posted == consumed {
                    try communicator.wait(sends, "\(name) step \(item.step): send to group rank \(right)")
                } else if try !sends.allSatisfy({ try communicator.transport.test($0) }) {
                    return false
                }
                pendingSends[item.range.lowerBound] = nil
            }
            if item.step + 1 < lastStep {
                // Relayed where the transport can: combined (reduce-scatter) or copied (all-gather)
                // straight into the send to the right. Only the last reduce-scatter step's sums
                // must stay in the buffer: they are this rank's block.
                let reducing = item.step < reduceSteps
                if let (receive, relay) = try communicator.irecvForwarding(
                    data.slice(item.range), op: reducing ? op : nil, from: left, tag: phaseTag(item.step),
                    to: right, forwardTag: phaseTag(item.step + 1), keep: !reducing || item.step == reduceSteps - 1) {
                    receives[posted] = receive
                    relays[posted] = relay
                    combinedOnArrival[posted] = true
                    posted += 1
                    continue
                }
            }
            if item.step < reduceSteps {
                // No send reads this chunk until it is complete: it is the one forwarded next step.
                if let receive = try communicator.irecvReducing(data.slice(item.range), op: op, from: left, tag: phaseTag(item.step)) {
                    receives[posted] = receive
                    combinedOnArrival[posted] = true
                    posted += 1
                    continue
                }
                target = stagingSlot(posted, count: item.range.count)
            } else {
                target = data.slice(item.range)
            }
            receives[posted] = try communicator.irecv(target, from: left, tag: phaseTag(item.step))
            posted += 1
        }
        return true
    }

    /// Does all the work that is ready now; returns true once the operation is complete.
    @discardableResult
    public func advance() throws -> Bool {
        try run(blocking: false)
    }

    /// Waits for the operation to complete.
    public func finish() throws {
        guard try run(blocking: true) else {
            throw TransportError.backend("\(name) stopped before completing (internal error); please report it")
        }
    }

    private func run(blocking: Bool) throws -> Bool {
        if finished { return true }
        while consumed < items.count {
            let index = consumed, item = items[index]
            if receives[index] == nil {
                // Blocking, this posts chunk `index` (waiting for an earlier send from it if need be);
                // otherwise it may have to stop short, and the operation yields.
                try postAhead(blocking: blocking)
                guard receives[index] != nil else { return false }
            }
            let receive = receives[index]!
            if blocking {
                try communicator.wait([receive], "\(name) step \(item.step): receive from group rank \(left)")
            } else if try !communicator.transport.test(receive) {
                return false
            }
            receives[index] = nil
            if item.step < reduceSteps && !combinedOnArrival[index] {
                op.combine(into: data.slice(item.range), from: stagingSlot(index, count: item.range.count).readOnly)
            }
            consumed += 1
            try postAhead(blocking: false)
            if let relay = relays[index] {
                relays[index] = nil
                pendingSends[item.range.lowerBound, default: []].append(relay)
            } else if item.step + 1 < lastStep {
                pendingSends[item.range.lowerBound, default: []].append(
                    try communicator.isend(data.slice(item.range).readOnly, to: right, tag: phaseTag(item.step + 1)))
            }
        }
        let sends = pendingSends.values.flatMap { $0 }
        if blocking {
            try communicator.wait(sends, "\(name): final sends to group rank \(right)")
        } else if try !sends.allSatisfy({ try communicator.transport.test($0) }) {
            return false
        }
        pendingSends.removeAll()
        finished = true
        communicator.scratch.giveBack(staging)
        completion()
        return true
    }
}

extension Communicator {
    func ringSteps(_ data: UnsafeMutableBufferPointer<Float>, partition: BlockPartition, shift: Int,
                   steps: Range<Int>, op: ReduceOp, tag: Int32, name: String) throws {
        try RingOperation(self, data: data, partition: partition, shift: shift, steps: steps, op: op, tag: tag, name: name).finish()
    }

    /// Starts a ring all-reduce of `buffer` and returns at once; drive it with `advance()`
    /// between pieces of other work and complete it with `finish()`. Collectives started on
    /// one communicator must be started in the same order on every member.
    public func startAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp = .sum) throws -> RingOperation {
        try logged("allreduce", floats: buffer.count) { try ringAllReduce(buffer, op: op, name: "all-reduce (ring, overlapped)") }
    }

    /// A ring all-reduce of `buffer` as a resumable operation (unlogged), named `name` in errors.
    func ringAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, name: String) throws -> RingOperation {
        let tag = nextCollectiveTag(), n = size
        return try RingOperation(self, data: buffer, partition: BlockPartition(count: buffer.count, parts: n), shift: 1,
                                 steps: 0..<(n > 1 ? 2 * (n - 1) : 0), op: op, tag: tag, name: name) { op.finish(buffer, groupSize: n) }
    }
}
