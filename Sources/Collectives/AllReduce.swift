/// All-reduce algorithms fleet implements over any `Transport`.
public enum AllReduceAlgorithm: String, Sendable, CaseIterable {
    /// Gather to rank 0, combine in rank order, send back: slow and obviously correct (the oracle).
    case naive
    /// Reduce-scatter then all-gather around a ring, chunked and pipelined.
    case ring
    /// Rabenseifner: recursive vector halving, then recursive doubling.
    case halvingDoubling = "hd"
    /// Binary tree: pipelined reduce to rank 0, then pipelined broadcast.
    case tree
    /// `MPI_Allreduce` (MPI transport only): the baseline.
    case native
    /// Reduce-scatter on each host, ring across hosts, all-gather on each host (a flat ring
    /// where the group sits on one host or splits unevenly).
    case hierarchical

    /// Parses `ring`, `hd` (or `halving-doubling`), `tree`, `naive`, `native`, `hierarchical`.
    public init?(name: String) {
        switch name.lowercased() {
        case "halving-doubling", "halvingdoubling", "rabenseifner": self = .halvingDoubling
        default: self.init(rawValue: name.lowercased())
        }
    }
}

extension Communicator {
    /// Reduces `buffer` element-wise across the group, in place, on every member.
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp = .sum,
                          algorithm: AllReduceAlgorithm = .ring) throws {
        try logged("allreduce", floats: buffer.count) {
            let tag = nextCollectiveTag()
            guard size > 1 else { return }
            switch algorithm {
            case .naive: try naiveAllReduce(buffer, op: op, tag: tag)
            case .ring:
                try ringSteps(buffer, partition: BlockPartition(count: buffer.count, parts: size), shift: 1,
                              steps: 0..<(2 * (size - 1)), op: op, tag: tag, name: "all-reduce (ring)")
            case .halvingDoubling: try halvingDoublingAllReduce(buffer, op: op, tag: tag)
            case .tree: try treeAllReduce(buffer, op: op, tag: tag)
            case .hierarchical:
                // Its phases take their own tags (and finish an average themselves).
                try hierarchicalOperation(buffer, op: op).finish()
                return
            case .native:
                guard let mpi = transport.mpi else {
                    throw TransportError.unsupported("the native all-reduce is MPI_Allreduce and needs the MPI transport (run under mpirun)")
                }
                try mpi.nativeAllReduce(buffer, op: op, members: members)
            }
            op.finish(buffer, groupSize: size)
        }
    }

    /// Array convenience for `allReduce(_:op:algorithm:)`.
    public func allReduce(_ array: inout [Float], op: ReduceOp = .sum, algorithm: AllReduceAlgorithm = .ring) throws {
        try array.withUnsafeMutableBufferPointer { try allReduce($0, op: op, algorithm: algorithm) }
    }

    /// The oracle: rank 0 receives every contribution and combines them strictly in rank order.
    func naiveAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, tag: Int32) throws {
        if rank == 0 {
            let incoming = scratch.floats(buffer.count)
            for source in 1..<size {
                try wait([try irecv(incoming, from: source, tag: tag)], "all-reduce (naive) gather from group rank \(source)")
                op.combine(into: buffer, from: incoming.readOnly)
            }
            let sends = try (1..<size).map { try isend(buffer.readOnly, to: $0, tag: tag) }
            try wait(sends, "all-reduce (naive) result to every rank")
        } else {
            let send = try isend(buffer.readOnly, to: 0, tag: tag)
            let receive = try irecv(buffer, from: 0, tag: tag)
            try wait([send, receive], "all-reduce (naive) with group rank 0")
        }
    }
}
