extension Communicator {
    /// The ring engine behind ring all-reduce, reduce-scatter and all-gather.
    ///
    /// At global step `g` this rank sends segment `(rank + shift - 1 - g) mod n` to its
    /// right neighbour and receives segment `(rank + shift - 2 - g) mod n` from its left;
    /// steps below `n - 1` combine what arrives (reduce-scatter), later ones store it
    /// (all-gather). After the reduce-scatter steps, segment `(rank + shift) mod n` is
    /// complete here.
    ///
    /// Segments travel in chunks and a chunk is forwarded as soon as it has arrived and
    /// been combined, so consecutive steps overlap (pipelining). Reduce-scatter chunks
    /// land in a few reused staging slots that stay in cache, instead of a staging copy
    /// of the whole segment: above L3 size that halves the memory traffic of a step.
    func ringSteps(_ data: UnsafeMutableBufferPointer<Float>, partition: BlockPartition, shift: Int,
                   steps: Range<Int>, op: ReduceOp, tag: Int32, name: String) throws {
        let n = size
        guard n > 1, !steps.isEmpty else { return }
        let right = (rank + 1) % n, left = (rank + n - 1) % n
        let chunk = max(1, chunkBytes / MemoryLayout<Float>.stride)
        let reduceSteps = n - 1
        let slots = 4
        func segment(_ offset: Int) -> Int { ((rank + shift + offset) % n + n) % n }
        func chunks(_ seg: Int) -> [Range<Int>] {
            let r = partition.range(seg)
            return stride(from: r.lowerBound, to: r.upperBound, by: chunk).map { $0..<min($0 + chunk, r.upperBound) }
        }
        // Reduce-scatter and all-gather messages carry different tags, so a window of
        // posted receives can never match a message of the other phase.
        func phaseTag(_ g: Int) -> Int32 { g < reduceSteps ? tag : tag | 1 }

        struct Item { let step: Int; let range: Range<Int> }
        var items: [Item] = []
        for g in steps {
            let seg = segment(-2 - g)
            items += chunks(seg).map { Item(step: g, range: $0) }
        }
        let staging = scratch.floats(slots * chunk)
        var receives: [Request?] = Array(repeating: nil, count: items.count)
        // Sends still in flight, by the first element of the chunk they read.
        var pendingSends: [Int: [Request]] = [:]
        var posted = 0

        /// Keeps up to `slots` reduce-scatter chunks (and a few all-gather chunks) posted ahead of use.
        /// An all-gather chunk overwrites its segment, so an earlier send from that segment must be
        /// finished first; that is waited for only when the chunk is needed next, never ahead of
        /// time (the neighbour may not have room to receive it yet, and waiting could deadlock the ring).
        func postAhead(consumed: Int) throws {
            while posted < items.count && posted - consumed < (items[posted].step < reduceSteps ? slots : 2 * slots) {
                let item = items[posted]
                let target: UnsafeMutableBufferPointer<Float>
                if item.step < reduceSteps {
                    let slot = posted % slots
                    target = staging.slice((slot * chunk)..<(slot * chunk + item.range.count))
                } else {
                    if let sends = pendingSends[item.range.lowerBound] {
                        if posted == consumed {
                            try wait(sends, "\(name) step \(item.step): send to group rank \(right)")
                        } else if try !sends.allSatisfy({ try transport.test($0) }) {
                            return
                        }
                        pendingSends[item.range.lowerBound] = nil
                    }
                    target = data.slice(item.range)
                }
                receives[posted] = try irecv(target, from: left, tag: phaseTag(item.step))
                posted += 1
            }
        }

        let firstSegment = segment(-1 - steps.lowerBound)
        for range in chunks(firstSegment) {
            pendingSends[range.lowerBound] = [try isend(data.slice(range).readOnly, to: right, tag: phaseTag(steps.lowerBound))]
        }
        try postAhead(consumed: 0)
        for (index, item) in items.enumerated() {
            if receives[index] == nil { try postAhead(consumed: index) }
            try wait([receives[index]!], "\(name) step \(item.step): receive from group rank \(left)")
            receives[index] = nil
            if item.step < reduceSteps {
                let slot = index % slots
                op.combine(into: data.slice(item.range), from: staging.slice((slot * chunk)..<(slot * chunk + item.range.count)).readOnly)
            }
            try postAhead(consumed: index + 1)
            if item.step + 1 < steps.upperBound {
                pendingSends[item.range.lowerBound, default: []].append(
                    try isend(data.slice(item.range).readOnly, to: right, tag: phaseTag(item.step + 1)))
            }
        }
        try wait(pendingSends.values.flatMap { $0 }, "\(name): final sends to group rank \(right)")
    }

    /// Reduces `buffer` across the group and leaves this rank's block of it (by
    /// `BlockPartition(count:parts:)`) complete in place; returns that block's range.
    /// The rest of `buffer` holds partial sums afterwards.
    @discardableResult
    public func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp = .sum) throws -> Range<Int> {
        let tag = nextCollectiveTag()
        let partition = BlockPartition(count: buffer.count, parts: size)
        try ringSteps(buffer, partition: partition, shift: 0, steps: 0..<(size - 1), op: op, tag: tag, name: "reduce-scatter (ring)")
        let mine = partition.range(rank)
        op.finish(buffer.slice(mine), groupSize: size)
        return mine
    }

    /// Gathers every member's block into `buffer`: this rank's block must already be in
    /// place at `BlockPartition(count: buffer.count, parts: size).range(rank)`.
    public func allGather(inPlace buffer: UnsafeMutableBufferPointer<Float>) throws {
        let tag = nextCollectiveTag()
        try ringSteps(buffer, partition: BlockPartition(count: buffer.count, parts: size), shift: 0,
                      steps: (size - 1)..<(2 * (size - 1)), op: .sum, tag: tag, name: "all-gather (ring)")
    }

    /// Gathers equal-sized contributions: `output[r * input.count ..< (r + 1) * input.count]` is rank r's input.
    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        guard output.count == input.count * size else {
            throw TransportError.invalidGroup("all-gather output holds \(output.count) floats, needs \(input.count) × \(size)")
        }
        let mine = output.slice((rank * input.count)..<((rank + 1) * input.count))
        if input.count > 0 { mine.baseAddress!.update(from: input.baseAddress!, count: input.count) }
        try allGather(inPlace: output)
    }
}
