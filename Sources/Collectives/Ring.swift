extension Communicator {
    /// The ring engine behind ring all-reduce, reduce-scatter and all-gather.
    ///
    /// At global step `g` this rank sends segment `(rank + shift - 1 - g) mod n` to its
    /// right neighbour and receives segment `(rank + shift - 2 - g) mod n` from its left;
    /// steps below `n - 1` combine what arrives (reduce-scatter), later ones store it
    /// (all-gather). Each segment travels in chunks, and a chunk is forwarded as soon as
    /// it has arrived and been combined, so consecutive steps overlap (pipelining).
    /// After the reduce-scatter steps, segment `(rank + shift) mod n` is complete here.
    func ringSteps(_ data: UnsafeMutableBufferPointer<Float>, partition: BlockPartition, shift: Int,
                   steps: Range<Int>, op: ReduceOp, tag: Int32, name: String) throws {
        let n = size
        guard n > 1, !steps.isEmpty else { return }
        let right = (rank + 1) % n, left = (rank + n - 1) % n
        let chunk = max(1, chunkBytes / MemoryLayout<Float>.stride)
        let reduceSteps = n - 1
        func segment(_ offset: Int) -> Int { ((rank + shift + offset) % n + n) % n }
        func sendSegment(_ g: Int) -> Int { segment(-1 - g) }
        func recvSegment(_ g: Int) -> Int { segment(-2 - g) }
        func chunks(_ seg: Int) -> [Range<Int>] {
            let r = partition.range(seg)
            return stride(from: r.lowerBound, to: r.upperBound, by: chunk).map { $0..<min($0 + chunk, r.upperBound) }
        }
        // Two staging buffers for incoming reduce-scatter data: step g fills one while step g-1's is combined.
        let staging = [scratch.floats(partition.largest, slot: 0), scratch.floats(partition.largest, slot: 1)]
        var pendingSends: [Int: [Request]] = [:]

        func post(_ g: Int) throws -> [Request] {
            let seg = recvSegment(g), base = partition.range(seg).lowerBound
            if g >= reduceSteps, let sends = pendingSends.removeValue(forKey: seg) {
                // All-gather receives overwrite the segment; an earlier send from it must finish first.
                try wait(sends, "\(name) step \(g): send to group rank \(right)")
            }
            return try chunks(seg).map { range in
                let target = g < reduceSteps
                    ? staging[g % 2].slice((range.lowerBound - base)..<(range.upperBound - base))
                    : data.slice(range)
                return try irecv(target, from: left, tag: tag)
            }
        }

        let first = steps.lowerBound
        pendingSends[sendSegment(first)] = try chunks(sendSegment(first)).map {
            try isend(data.slice($0).readOnly, to: right, tag: tag)
        }
        var receives = try post(first)
        for g in steps {
            let next = g + 1 < steps.upperBound ? try post(g + 1) : []
            let seg = recvSegment(g), base = partition.range(seg).lowerBound
            for (k, range) in chunks(seg).enumerated() {
                try wait([receives[k]], "\(name) step \(g): receive from group rank \(left)")
                if g < reduceSteps {
                    op.combine(into: data.slice(range),
                               from: staging[g % 2].slice((range.lowerBound - base)..<(range.upperBound - base)).readOnly)
                }
                if g + 1 < steps.upperBound {
                    pendingSends[seg, default: []].append(try isend(data.slice(range).readOnly, to: right, tag: tag))
                }
            }
            receives = next
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
