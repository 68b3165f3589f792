extension Communicator {
    /// Rabenseifner's all-reduce: recursive vector halving (reduce-scatter) then recursive
    /// doubling (all-gather) among a power-of-two subset; the remaining ranks first fold
    /// their data into a neighbour and get the result back at the end.
    func halvingDoublingAllReduce(_ data: UnsafeMutableBufferPointer<Float>, op: ReduceOp, tag: Int32) throws {
        let n = size
        var p = 1
        while p * 2 <= n { p *= 2 }
        let extra = n - p
        let name = "all-reduce (halving-doubling)"
        // Fold: among the first 2·extra ranks, even ones hand their data to the next odd one.
        var virtualRank = -1
        if rank < 2 * extra {
            if rank % 2 == 0 {
                try wait([try isend(data.readOnly, to: rank + 1, tag: tag)], "\(name) fold to group rank \(rank + 1)")
            } else {
                let incoming = scratch.floats(data.count)
                try wait([try irecv(incoming, from: rank - 1, tag: tag)], "\(name) fold from group rank \(rank - 1)")
                op.combine(into: data, from: incoming.readOnly)
                virtualRank = rank / 2
            }
        } else {
            virtualRank = rank - extra
        }
        if virtualRank >= 0 {
            func real(_ v: Int) -> Int { v < extra ? 2 * v + 1 : v + extra }
            var ranges: [Range<Int>] = []
            var current = 0..<data.count
            var mask = p / 2
            while mask > 0 {
                let partner = real(virtualRank ^ mask)
                let mid = current.lowerBound + current.count / 2
                let (keep, give) = virtualRank & mask == 0
                    ? (current.lowerBound..<mid, mid..<current.upperBound)
                    : (mid..<current.upperBound, current.lowerBound..<mid)
                let incoming = scratch.floats(keep.count)
                let requests = [try irecv(incoming, from: partner, tag: tag), try isend(data.slice(give).readOnly, to: partner, tag: tag)]
                try wait(requests, "\(name) halving with group rank \(partner)")
                op.combine(into: data.slice(keep), from: incoming.readOnly)
                ranges.append(current)
                current = keep
                mask /= 2
            }
            mask = 1
            while mask < p {
                let partner = real(virtualRank ^ mask)
                let parent = ranges.removeLast()
                let other = current.lowerBound == parent.lowerBound
                    ? current.upperBound..<parent.upperBound : parent.lowerBound..<current.lowerBound
                let requests = [try irecv(data.slice(other), from: partner, tag: tag),
                                try isend(data.slice(current).readOnly, to: partner, tag: tag)]
                try wait(requests, "\(name) doubling with group rank \(partner)")
                current = parent
                mask *= 2
            }
        }
        if rank < 2 * extra {
            if rank % 2 == 0 {
                try wait([try irecv(data, from: rank + 1, tag: tag)], "\(name) unfold from group rank \(rank + 1)")
            } else {
                try wait([try isend(data.readOnly, to: rank - 1, tag: tag)], "\(name) unfold to group rank \(rank - 1)")
            }
        }
    }
}
