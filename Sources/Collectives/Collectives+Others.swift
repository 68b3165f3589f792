extension Communicator {
    /// Copies `root`'s buffer to every member (binomial tree).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws {
        let tag = nextCollectiveTag()
        guard size > 1 else { return }
        try checkRoot(root)
        let virtualRank = (rank - root + size) % size
        func real(_ v: Int) -> Int { (v + root) % size }
        var mask = 1
        while mask < size {
            if virtualRank & mask != 0 {
                try wait([try irecv(buffer, from: real(virtualRank - mask), tag: tag)], "broadcast from group rank \(real(virtualRank - mask))")
                break
            }
            mask <<= 1
        }
        var sends: [Request] = []
        mask >>= 1
        while mask > 0 {
            if virtualRank + mask < size { sends.append(try isend(buffer.readOnly, to: real(virtualRank + mask), tag: tag)) }
            mask >>= 1
        }
        try wait(sends, "broadcast to subtree")
    }

    /// Reduces every member's buffer into `root`'s (binomial tree); other members' buffers hold partial results afterwards.
    public func reduce(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0, op: ReduceOp = .sum) throws {
        let tag = nextCollectiveTag()
        guard size > 1 else { return }
        try checkRoot(root)
        let virtualRank = (rank - root + size) % size
        func real(_ v: Int) -> Int { (v + root) % size }
        let incoming = scratch.floats(buffer.count)
        var mask = 1
        while mask < size {
            if virtualRank & mask == 0 {
                let source = virtualRank | mask
                if source < size {
                    try wait([try irecv(incoming, from: real(source), tag: tag)], "reduce from group rank \(real(source))")
                    op.combine(into: buffer, from: incoming.readOnly)
                }
            } else {
                try wait([try isend(buffer.readOnly, to: real(virtualRank - mask), tag: tag)], "reduce to group rank \(real(virtualRank - mask))")
                break
            }
            mask <<= 1
        }
        if rank == root { op.finish(buffer, groupSize: size) }
    }

    /// Personalised exchange: block r of `input` goes to rank r, and block r of `output`
    /// comes from rank r; both hold `size` equal blocks.
    public func allToAll(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        try logged("alltoall", floats: input.count) {
            let tag = nextCollectiveTag()
            guard input.count == output.count, input.count % size == 0 else {
                throw TransportError.invalidGroup("all-to-all needs equal input and output sizes divisible by \(size); got \(input.count) and \(output.count)")
            }
            let block = input.count / size
            func range(_ r: Int) -> Range<Int> { (r * block)..<((r + 1) * block) }
            if block > 0 {
                output.baseAddress!.advanced(by: rank * block).update(from: input.baseAddress!.advanced(by: rank * block), count: block)
            }
            var requests: [Request] = []
            for step in 1..<size {
                let to = (rank + step) % size, from = (rank - step + size) % size
                requests.append(try irecv(output.slice(range(from)), from: from, tag: tag))
                requests.append(try isend(UnsafeBufferPointer(rebasing: input[range(to)]), to: to, tag: tag))
            }
            try wait(requests, "all-to-all")
        }
    }

    /// Personalised exchange of uneven blocks (MPI's all-to-all-v; a mixture of experts' token
    /// dispatch): `sendCounts[r]` floats of `input`, blocks in group-rank order, go to rank r.
    /// What came from each rank lands in `output` in group-rank order; returns how many floats
    /// each sent. The counts travel first (one per pair), so a receiver need not know them;
    /// `output` must hold their sum. Pairwise rounds as `allToAll`: in round s, rank i sends
    /// to i + s and receives from i − s.
    @discardableResult
    public func allToAllV(_ input: UnsafeBufferPointer<Float>, sendCounts: [Int], into output: UnsafeMutableBufferPointer<Float>) throws -> [Int] {
        try logged("alltoall", floats: input.count) {
            guard sendCounts.count == size, sendCounts.allSatisfy({ $0 >= 0 }), sendCounts.reduce(0, +) == input.count else {
                throw TransportError.invalidGroup("all-to-all-v needs one count per member (\(size)), none negative, summing to the input's \(input.count) floats; got \(sendCounts)")
            }
            let countTag = nextCollectiveTag(), dataTag = nextCollectiveTag()
            let outgoing = sendCounts.map(UInt64.init)
            var incoming = [UInt64](repeating: 0, count: size)
            incoming[rank] = outgoing[rank]
            var requests: [Request] = []
            try outgoing.withUnsafeBytes { sent in
                try incoming.withUnsafeMutableBytes { received in
                    let width = MemoryLayout<UInt64>.stride
                    for step in 1..<max(size, 1) {
                        let to = (rank + step) % size, from = (rank - step + size) % size
                        requests.append(try irecv(into: UnsafeMutableRawBufferPointer(rebasing: received[(from * width)..<((from + 1) * width)]), from: from, tag: countTag))
                        requests.append(try isend(UnsafeRawBufferPointer(rebasing: sent[(to * width)..<((to + 1) * width)]), to: to, tag: countTag))
                    }
                    try wait(requests, "all-to-all-v counts")
                }
            }
            let received = incoming.map { Int($0) }
            guard received.reduce(0, +) <= output.count else {
                throw TransportError.invalidGroup("all-to-all-v receives \(received.reduce(0, +)) floats (\(received) from each member), more than the output's \(output.count)")
            }
            func offsets(_ counts: [Int]) -> [Int] { counts.reduce(into: [0]) { $0.append($0.last! + $1) } }
            let sendAt = offsets(sendCounts), receiveAt = offsets(received)
            if received[rank] > 0 {
                output.baseAddress!.advanced(by: receiveAt[rank]).update(from: input.baseAddress!.advanced(by: sendAt[rank]), count: received[rank])
            }
            requests = []
            for step in 1..<max(size, 1) {
                let to = (rank + step) % size, from = (rank - step + size) % size
                requests.append(try irecv(output.slice(receiveAt[from]..<receiveAt[from + 1]), from: from, tag: dataTag))
                requests.append(try isend(UnsafeBufferPointer(rebasing: input[sendAt[to]..<sendAt[to + 1]]), to: to, tag: dataTag))
            }
            try wait(requests, "all-to-all-v")
            return received
        }
    }

    /// Returns once every member has entered the barrier (dissemination algorithm).
    public func barrier() throws {
        let tag = nextCollectiveTag()
        var distance = 1
        let empty = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
        while distance < size {
            let to = (rank + distance) % size, from = (rank - distance + size) % size
            try wait([try irecv(empty, from: from, tag: tag), try isend(empty.readOnly, to: to, tag: tag)],
                     "barrier round \(distance) (waiting for group rank \(from))")
            distance <<= 1
        }
    }

    private func checkRoot(_ root: Int) throws {
        guard (0..<size).contains(root) else { throw TransportError.invalidRank(root, worldSize: size) }
    }
}

extension Communicator {
    /// Collects every member's bytes (each its own length) on `root`, in group-rank order;
    /// other members get nil. Each contribution travels as its length, then its bytes.
    public func gather(bytes: [UInt8], root: Int = 0) throws -> [[UInt8]]? {
        let tag = nextCollectiveTag()
        try checkRoot(root)
        if rank != root {
            var length = UInt64(bytes.count)
            let to = try worldRank(root)
            try withUnsafeBytes(of: &length) { try wait([try transport.isend($0, to: to, tag: tag)], "gather: length to group rank \(root)") }
            try bytes.withUnsafeBytes { try wait([try transport.isend($0, to: to, tag: tag)], "gather: bytes to group rank \(root)") }
            return nil
        }
        var all: [[UInt8]] = []
        for member in 0..<size {
            guard member != rank else { all.append(bytes); continue }
            let from = try worldRank(member)
            var length: UInt64 = 0
            try withUnsafeMutableBytes(of: &length) { try wait([try transport.irecv(into: $0, from: from, tag: tag)], "gather: length from group rank \(member)") }
            var received = [UInt8](repeating: 0, count: Int(length))
            try received.withUnsafeMutableBytes { try wait([try transport.irecv(into: $0, from: from, tag: tag)], "gather: bytes from group rank \(member)") }
            all.append(received)
        }
        return all
    }
}
