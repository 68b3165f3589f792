import Parallelism

extension Communicator {
    /// A sum all-reduce whose result does not depend on the group size: member i holds the
    /// partial sum of node `[i·n/size, (i+1)·n/size)` of `tree` (n = `tree.leaves`), and
    /// every element is combined in the tree's order, so the result is bitwise the sum one
    /// process forms over the whole tree. Each member receives every partial of its block
    /// (a reduce-scatter by direct exchange), sums them in order, and the blocks are
    /// all-gathered: the same traffic as a ring, but never a ring-rotated order.
    public func orderedAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, tree: ReductionTree) throws {
        try logged("allreduce", floats: buffer.count) {
            guard size > 1 else { return }
            try orderedSum(buffer, tree: tree, tag: nextCollectiveTag())
            try allGather(inPlace: buffer)
        }
    }

    /// The first half of `orderedAllReduce`: this member's block (by `BlockPartition`) ends
    /// complete, summed in `tree`'s order, and its range is returned; the rest of `buffer` is
    /// left as it was. Sequence parallelism's g operator in deterministic mode.
    @discardableResult
    public func orderedReduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, tree: ReductionTree) throws -> Range<Int> {
        try logged("reduce_scatter", floats: buffer.count) {
            let mine = BlockPartition(count: buffer.count, parts: size).range(rank)
            guard size > 1 else { return mine }
            try orderedSum(buffer, tree: tree, tag: nextCollectiveTag())
            return mine
        }
    }

    /// Each member receives every partial of its block (a reduce-scatter by direct exchange) and
    /// sums them in tree order into its block.
    private func orderedSum(_ buffer: UnsafeMutableBufferPointer<Float>, tree: ReductionTree, tag: Int32) throws {
        guard tree.isAligned(parts: size) else {
            throw TransportError.invalidGroup("an ordered all-reduce over \(size) members needs a tree whose \(tree.leaves) leaves split into \(size) nodes")
        }
        let partition = BlockPartition(count: buffer.count, parts: size), mine = partition.range(rank)
        let width = partition.largest, leavesPerMember = tree.leaves / size
        let incoming = scratch.floats(size * width, slot: 0)
        var requests: [Request] = []
        for step in 1..<size {
            let to = (rank + step) % size, from = (rank - step + size) % size
            requests.append(try irecv(incoming.slice((from * width)..<(from * width + mine.count)), from: from, tag: tag))
            requests.append(try isend(UnsafeBufferPointer(rebasing: buffer[partition.range(to)]), to: to, tag: tag))
        }
        try wait(requests, "ordered all-reduce (exchange of blocks)")
        guard !mine.isEmpty else { return }
        let total = scratch.floats(mine.count, slot: 1)
        let own = buffer.baseAddress! + mine.lowerBound
        tree.sum(tree.root, into: total.baseAddress!, count: mine.count, value: { node, out in
            guard node.count == leavesPerMember, node.lowerBound % leavesPerMember == 0 else { return false }
            let member = node.lowerBound / leavesPerMember
            out.update(from: member == rank ? own : incoming.baseAddress! + member * width, count: mine.count)
            return true
        }, scratch: { level in self.scratch.floats(mine.count, slot: 2 + level).baseAddress! })
        own.update(from: total.baseAddress!, count: mine.count)
    }
}
