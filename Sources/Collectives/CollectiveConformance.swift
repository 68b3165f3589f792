/// Holds every collective to its slow, obviously correct reference, on any transport.
///
/// Inputs are small integers, whose sums are exact in Float32 in any order, so each
/// algorithm must equal the naive all-reduce (gather, combine in rank order, broadcast)
/// bit for bit. Every member of `communicator` must run the same checks.
public struct CollectiveConformance {
    public let communicator: Communicator
    /// Element counts to try: empty, tiny, smaller than the group, not divisible by it, large.
    public var lengths = [0, 1, 2, 3, 5, 7, 8, 13, 64, 1000, 4097, 65_537]
    public private(set) var checks = 0
    public private(set) var failures: [String] = []

    public init(communicator: Communicator) { self.communicator = communicator }

    /// Runs all checks; returns the failures (empty when all passed).
    public mutating func run() throws -> [String] {
        // Hierarchical splits the group by host where the transport knows hosts (a flat ring otherwise).
        var algorithms: [AllReduceAlgorithm] = [.ring, .halvingDoubling, .tree, .hierarchical]
        if communicator.transport.mpi != nil { algorithms.append(.native) }
        let defaultChunk = communicator.chunkBytes
        for chunkBytes in [defaultChunk, 12] {
            communicator.chunkBytes = chunkBytes
            for length in lengths {
                for op in [ReduceOp.sum, .average, .max] {
                    for algorithm in algorithms {
                        try checkAllReduce(communicator, length: length, op: op, algorithm: algorithm)
                    }
                }
                try checkOthers(communicator, length: length)
            }
        }
        // Large messages take MPI's rendezvous path (sends complete only once received), which
        // small eager messages never exercise.
        for (chunk, length) in [(64 << 10, 1 << 20), (1 << 20, 65_536)] {
            communicator.chunkBytes = chunk
            for algorithm in [AllReduceAlgorithm.ring, .halvingDoubling, .tree, .hierarchical] {
                try checkAllReduce(communicator, length: length, op: .sum, algorithm: algorithm)
            }
            for hierarchical in [false, true] { try checkOverlappedAllReduces(finishNewestFirst: false, hierarchical: hierarchical) }
        }
        communicator.chunkBytes = defaultChunk
        for newestFirst in [false, true] {
            for hierarchical in [false, true] { try checkOverlappedAllReduces(finishNewestFirst: newestFirst, hierarchical: hierarchical) }
        }
        try checkSubgroups()
        try communicator.barrier()
        return failures
    }

    private func input(_ comm: Communicator, _ length: Int, salt: Int = 0) -> [Float] {
        (0..<length).map { CollectiveBenchmark.value(rank: comm.rank + salt, index: $0) }
    }

    private mutating func expect(_ ok: Bool, _ what: @autoclosure () -> String) {
        checks += 1
        if !ok { failures.append("rank \(communicator.transport.rank): \(what())") }
    }

    private static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    private mutating func checkAllReduce(_ comm: Communicator, length: Int, op: ReduceOp, algorithm: AllReduceAlgorithm) throws {
        var reference = input(comm, length)
        try comm.allReduce(&reference, op: op, algorithm: .naive)
        var candidate = input(comm, length)
        try comm.allReduce(&candidate, op: op, algorithm: algorithm)
        expect(Self.same(reference, candidate),
               "all-reduce \(algorithm.rawValue) \(op.rawValue) of \(length) floats on \(comm.size) ranks (chunk \(comm.chunkBytes) B) differs from naive")
    }

    private mutating func checkOthers(_ comm: Communicator, length: Int) throws {
        let n = comm.size
        var reference = input(comm, length)
        try comm.allReduce(&reference, op: .sum, algorithm: .naive)

        var scattered = input(comm, length)
        let block = try scattered.withUnsafeMutableBufferPointer { try comm.reduceScatter($0) }
        expect(Self.same(Array(scattered[block]), Array(reference[block])), "reduce-scatter of \(length) floats differs from naive")

        let partition = BlockPartition(count: length, parts: n)
        var gathered = [Float](repeating: .nan, count: length)
        let mine = partition.range(comm.rank)
        for i in mine { gathered[i] = CollectiveBenchmark.value(rank: comm.rank, index: i) }
        try gathered.withUnsafeMutableBufferPointer { try comm.allGather(inPlace: $0) }
        let expectedGather = (0..<length).map { i in
            CollectiveBenchmark.value(rank: (0..<n).first { partition.range($0).contains(i) }!, index: i)
        }
        expect(Self.same(gathered, expectedGather), "all-gather of \(length) floats is wrong")

        for root in (n > 1 ? [0, n - 1] : [0]) {  // same order on every rank (a Set's order differs per process)
            var broadcasted = comm.rank == root ? input(comm, length) : [Float](repeating: .nan, count: length)
            try broadcasted.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            let expectedBroadcast = (0..<length).map { CollectiveBenchmark.value(rank: root, index: $0) }
            expect(Self.same(broadcasted, expectedBroadcast), "broadcast of \(length) floats from root \(root) is wrong")

            var reduced = input(comm, length)
            try reduced.withUnsafeMutableBufferPointer { try comm.reduce($0, root: root) }
            if comm.rank == root { expect(Self.same(reduced, reference), "reduce of \(length) floats to root \(root) differs from naive") }
        }

        let perPeer = length / max(n, 1)
        let sent = (0..<(perPeer * n)).map { CollectiveBenchmark.value(rank: comm.rank * n + $0 / max(perPeer, 1), index: $0 % max(perPeer, 1)) }
        var received = [Float](repeating: .nan, count: perPeer * n)
        try sent.withUnsafeBufferPointer { s in try received.withUnsafeMutableBufferPointer { try comm.allToAll(s, into: $0) } }
        let expectedExchange = (0..<(perPeer * n)).map {
            CollectiveBenchmark.value(rank: ($0 / max(perPeer, 1)) * n + comm.rank, index: $0 % max(perPeer, 1))
        }
        expect(Self.same(received, expectedExchange), "all-to-all of \(perPeer) floats per peer is wrong")
        try checkUnevenAllToAll(comm, length: length)
    }

    /// All-to-all-v: rank i sends rank j a block whose size depends on both (zero for some
    /// pairs), each element naming its sender, receiver and place; the reference is the same
    /// formula read from the receiver's side.
    private mutating func checkUnevenAllToAll(_ comm: Communicator, length: Int) throws {
        let n = comm.size
        func count(_ from: Int, _ to: Int) -> Int { (from + 1) * (to + 2) * length % (length / 2 + 3) }
        func value(_ from: Int, _ to: Int, _ k: Int) -> Float { CollectiveBenchmark.value(rank: from * n + to, index: k) }
        let counts = (0..<n).map { count(comm.rank, $0) }
        let sent = (0..<n).flatMap { to in (0..<counts[to]).map { value(comm.rank, to, $0) } }
        let expectedCounts = (0..<n).map { count($0, comm.rank) }
        var received = [Float](repeating: .nan, count: expectedCounts.reduce(0, +) + 1)
        let got = try sent.withUnsafeBufferPointer { s in try received.withUnsafeMutableBufferPointer { try comm.allToAllV(s, sendCounts: counts, into: $0) } }
        let expected = (0..<n).flatMap { from in (0..<expectedCounts[from]).map { value(from, comm.rank, $0) } }
        expect(got == expectedCounts && Self.same(Array(received.prefix(expected.count)), expected),
               "all-to-all-v (sent \(counts), expected \(expectedCounts), got \(got)) is wrong")
    }

    /// Several ring all-reduces in flight at once, driven by `advance()` in varying order,
    /// must each equal the naive result (the gradient-bucket pattern of data parallelism).
    private mutating func checkOverlappedAllReduces(finishNewestFirst: Bool, hierarchical: Bool) throws {
        let comm = communicator
        let lengths = [1000, 3, 4097, 0, 65_537, 300_001]
        var references = lengths.enumerated().map { input(comm, $1, salt: $0) }
        for i in references.indices { try comm.allReduce(&references[i], algorithm: .naive) }
        let buffers = lengths.enumerated().map { i, n in UnsafeMutableBufferPointer<Float>.allocate(capacity: max(n, 1)) }
        defer { buffers.forEach { $0.deallocate() } }
        for (i, n) in lengths.enumerated() {
            for j in 0..<n { buffers[i][j] = CollectiveBenchmark.value(rank: comm.rank + i, index: j) }
        }
        var operations: [CollectiveOperation] = []
        for (i, n) in lengths.enumerated() {
            let buffer = UnsafeMutableBufferPointer(rebasing: buffers[i][0..<n])
            operations.append(hierarchical ? try comm.startHierarchicalAllReduce(buffer) : try comm.startAllReduce(buffer))
            for operation in operations.reversed() { try operation.advance() }
        }
        // Finished newest first: a ring must not wait on an older one that nobody drives.
        for operation in finishNewestFirst ? operations.reversed() : operations { try operation.finish() }
        for (i, n) in lengths.enumerated() {
            expect(Self.same(Array(buffers[i][0..<n]), references[i]),
                   "overlapped \(hierarchical ? "hierarchical" : "ring") all-reduce #\(i) of \(n) floats differs from naive (finished \(finishNewestFirst ? "newest" : "oldest") first)")
        }
    }

    /// Even and odd ranks as two disjoint groups, and an overlapping group of the first and last rank.
    private mutating func checkSubgroups() throws {
        let world = communicator
        guard world.size >= 2 else { return }
        let parity = world.rank % 2
        let halves = try world.subgroup(world.members.filter { $0 % 2 == parity })
        for algorithm in [AllReduceAlgorithm.ring, .halvingDoubling, .tree] {
            var reference = input(halves, 1001, salt: 3)
            try halves.allReduce(&reference, algorithm: .naive)
            var candidate = input(halves, 1001, salt: 3)
            try halves.allReduce(&candidate, algorithm: algorithm)
            let members = halves.members
            let expected = (0..<1001).map { i in members.indices.reduce(Float(0)) { $0 + CollectiveBenchmark.value(rank: $1 + 3, index: i) } }
            expect(Self.same(candidate, reference) && Self.same(candidate, expected),
                   "\(algorithm.rawValue) all-reduce in sub-group \(members) is wrong")
        }
        let ends = [0, world.size - 1]
        if ends.contains(world.rank) {
            let pair = try world.subgroup(ends)
            var values = input(pair, 77)
            try pair.allReduce(&values)
            let expected = (0..<77).map { CollectiveBenchmark.value(rank: 0, index: $0) + CollectiveBenchmark.value(rank: 1, index: $0) }
            expect(Self.same(values, expected), "all-reduce in overlapping sub-group \(ends) is wrong")
        }
    }
}
