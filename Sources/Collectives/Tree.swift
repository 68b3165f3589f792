extension Communicator {
    /// Binary-tree all-reduce rooted at group rank 0 (children of r are 2r+1 and 2r+2):
    /// chunks flow up (each node combines its own data, then its children's, in that
    /// order) and then down, so the two halves of the tree work in a pipeline.
    func treeAllReduce(_ data: UnsafeMutableBufferPointer<Float>, op: ReduceOp, tag: Int32) throws {
        let name = "all-reduce (tree)"
        let parent = rank > 0 ? (rank - 1) / 2 : nil
        let children = [2 * rank + 1, 2 * rank + 2].filter { $0 < size }
        let chunk = max(1, chunkBytes / MemoryLayout<Float>.stride)
        let ranges = stride(from: 0, to: data.count, by: chunk).map { $0..<min($0 + chunk, data.count) }
        // Per child, two staging chunks: chunk k+1 arrives while chunk k is combined.
        let staging = children.indices.map { scratch.floats(2 * chunk, slot: $0) }
        func stage(_ child: Int, _ k: Int) -> UnsafeMutableBufferPointer<Float> {
            staging[child].slice((k % 2) * chunk..<((k % 2) * chunk + ranges[k].count))
        }
        func postUp(_ k: Int) throws -> [Request] {
            try children.indices.map { try irecv(stage($0, k), from: children[$0], tag: tag) }
        }
        var upSends: [Request] = []
        var next = ranges.isEmpty ? [] : try postUp(0)
        for k in ranges.indices {
            let current = next
            try wait(current, "\(name) chunk \(k) from children \(children)")
            next = k + 1 < ranges.count ? try postUp(k + 1) : []
            for c in children.indices { op.combine(into: data.slice(ranges[k]), from: stage(c, k).readOnly) }
            if let parent { upSends.append(try isend(data.slice(ranges[k]).readOnly, to: parent, tag: tag)) }
        }
        try wait(upSends, "\(name) sends to parent")
        var downSends: [Request] = []
        let downReceives = try parent.map { p in try ranges.map { try irecv(data.slice($0), from: p, tag: tag) } } ?? []
        for k in ranges.indices {
            if let parent { try wait([downReceives[k]], "\(name) chunk \(k) from parent \(parent)") }
            for child in children { downSends.append(try isend(data.slice(ranges[k]).readOnly, to: child, tag: tag)) }
        }
        try wait(downSends, "\(name) sends to children \(children)")
    }
}
