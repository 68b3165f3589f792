extension Communicator {
    /// Ring attention's pass: every member's block travels once round the ring, so each rank
    /// ends with all of them in `blocks` (block r from group rank r, as `allGather` leaves them).
    /// `arrived(r)` runs on each block as it lands — this rank's own first — while the next one
    /// is still in flight, so a caller computes on the blocks it has instead of waiting for all.
    /// Logged as an all-gather of this rank's block.
    public func ringPass(_ local: UnsafeBufferPointer<Float>, into blocks: UnsafeMutableBufferPointer<Float>,
                         arrived: (Int) throws -> Void) throws {
        let block = local.count
        guard blocks.count == block * size else {
            throw TransportError.invalidGroup("ring pass output holds \(blocks.count) floats, needs \(block) × \(size)")
        }
        func member(_ r: Int) -> Int { (r % size + size) % size }
        func slot(_ r: Int) -> UnsafeMutableBufferPointer<Float> { blocks.slice((member(r) * block)..<((member(r) + 1) * block)) }
        if block > 0 { slot(rank).baseAddress!.update(from: local.baseAddress!, count: block) }
        try logged("all_gather", floats: block) {
            let tag = nextCollectiveTag(), right = (rank + 1) % size, left = (rank + size - 1) % size
            // Step s: pass on the block that arrived last step (own at first), take the next from the left.
            for s in 0..<(size - 1) {
                let outgoing = slot(rank - s), incoming = slot(rank - s - 1)
                var requests: [Request] = []
                if block > 0 {
                    requests.append(try irecv(incoming, from: left, tag: tag | Int32(s & 0xFF)))
                    requests.append(try isend(UnsafeBufferPointer(outgoing), to: right, tag: tag | Int32(s & 0xFF)))
                }
                try arrived(member(rank - s))
                try wait(requests, "ring pass step \(s + 1) of \(size - 1)")
            }
            // The last to land (for one member, its own block).
            try arrived(member(rank + 1))
        }
    }
}
