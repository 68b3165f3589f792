extension Communicator {
    /// Reduces `buffer` across the group and leaves this rank's block of it (by
    /// `BlockPartition(count:parts:)`) complete in place; returns that block's range.
    /// The rest of `buffer` holds unspecified values afterwards (partial sums, or the input
    /// where chunks were relayed onward without landing).
    @discardableResult
    public func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp = .sum) throws -> Range<Int> {
        try logged("reduce_scatter", floats: buffer.count) {
            let tag = nextCollectiveTag()
            let partition = BlockPartition(count: buffer.count, parts: size)
            try ringSteps(buffer, partition: partition, shift: 0, steps: 0..<(size - 1), op: op, tag: tag, name: "reduce-scatter (ring)")
            let mine = partition.range(rank)
            op.finish(buffer.slice(mine), groupSize: size)
            return mine
        }
    }

    /// Gathers every member's block into `buffer`: this rank's block must already be in
    /// place at `BlockPartition(count: buffer.count, parts: size).range(rank)`.
    public func allGather(inPlace buffer: UnsafeMutableBufferPointer<Float>) throws {
        try logged("all_gather", floats: BlockPartition(count: buffer.count, parts: size).range(rank).count) {
            let tag = nextCollectiveTag()
            try ringSteps(buffer, partition: BlockPartition(count: buffer.count, parts: size), shift: 0,
                          steps: (size - 1)..<(2 * (size - 1)), op: .sum, tag: tag, name: "all-gather (ring)")
        }
    }

    /// Starts the ring all-gather of `allGather(inPlace:)` and returns at once (ZeRO-3's
    /// prefetch of the next unit's weights); drive it with `advance()`, complete it with `finish()`.
    public func startAllGather(inPlace buffer: UnsafeMutableBufferPointer<Float>) throws -> RingOperation {
        try logged("all_gather", floats: BlockPartition(count: buffer.count, parts: size).range(rank).count) {
            let tag = nextCollectiveTag()
            return try RingOperation(self, data: buffer, partition: BlockPartition(count: buffer.count, parts: size), shift: 0,
                                     steps: (size - 1)..<(2 * (size - 1)), op: .sum, tag: tag, name: "all-gather (ring, prefetched)")
        }
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
