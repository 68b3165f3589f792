import Parallelism
import XCTest
import Collectives

/// The conformance suite and error paths on the in-process backend (threads), for world sizes 1–8.
final class InProcessCollectivesTests: XCTestCase {
    func testEveryAlgorithmMatchesNaiveForWorldSizesOneToEight() throws {
        for worldSize in 1...8 {
            let results = LocalFabric.run(worldSize: worldSize) { transport -> (Int, [String]) in
                var suite = CollectiveConformance(communicator: Communicator(world: transport))
                suite.lengths = [0, 1, 2, 3, 5, 7, 8, 13, 100, 4097]
                let failures = try suite.run()
                return (suite.checks, failures)
            }
            for (rank, result) in results.enumerated() {
                let (checks, failures) = try result.get()
                XCTAssertGreaterThan(checks, 100, "world \(worldSize) rank \(rank) ran too few checks")
                XCTAssertEqual(failures, [], "world \(worldSize) rank \(rank)")
            }
        }
    }

    /// Ranks standing for several hosts: the hierarchical all-reduce splits the group by host
    /// (contiguous or interleaved placement) and still equals naive bit for bit; hosts holding
    /// different numbers of ranks take the flat ring.
    func testHierarchicalAllReduceMatchesNaiveOnSeveralHosts() throws {
        let placements = [["a", "a", "b", "b"], ["a", "b", "a", "b"], ["a", "a", "a", "b", "b", "b"], ["a", "a", "b", "b", "c", "c"],
                          ["x", "y", "z"], ["a", "a", "b"]]
        for hosts in placements {
            let results = LocalFabric.run(worldSize: hosts.count, hosts: hosts) { transport -> (Int, [String], Bool) in
                let world = Communicator(world: transport)
                var suite = CollectiveConformance(communicator: world)
                suite.lengths = [0, 1, 3, 7, 100, 4097]
                let failures = try suite.run()
                return (suite.checks, failures, try world.hostHierarchy() != nil)
            }
            for (rank, result) in results.enumerated() {
                let (checks, failures, split) = try result.get()
                XCTAssertGreaterThan(checks, 100)
                XCTAssertEqual(failures, [], "\(hosts) rank \(rank)")
                XCTAssertEqual(split, hosts != ["a", "a", "b"], "\(hosts): split by host unless uneven")
            }
        }
    }

    func testRingMatchesExactSumsForManyRandomLengthsAndChunkSizes() throws {
        var generator = SplitMix(seed: 42)
        for _ in 0..<40 {
            let worldSize = Int.random(in: 2...6, using: &generator)
            let length = Int.random(in: 0...3000, using: &generator)
            let chunk = 4 * Int.random(in: 1...300, using: &generator)
            let algorithm = [AllReduceAlgorithm.ring, .halvingDoubling, .tree].randomElement(using: &generator)!
            let results = LocalFabric.run(worldSize: worldSize) { transport -> [Float] in
                let world = Communicator(world: transport)
                world.chunkBytes = chunk
                var values = (0..<length).map { CollectiveBenchmark.value(rank: transport.rank, index: $0) }
                try world.allReduce(&values, algorithm: algorithm)
                return values
            }
            let expected = (0..<length).map { i in (0..<worldSize).reduce(Float(0)) { $0 + CollectiveBenchmark.value(rank: $1, index: i) } }
            for result in results {
                XCTAssertEqual(try result.get(), expected, "\(algorithm) n=\(worldSize) length=\(length) chunk=\(chunk)")
            }
        }
    }

    /// The oracle: one process sums 8 leaves (random values of mixed magnitude, so that the
    /// order shows in the rounding) as a pairwise tree, recursively, by hand.
    private static func treeSum(_ leaves: [[Float]], _ range: Range<Int>) -> [Float] {
        if range.count == 1 { return leaves[range.lowerBound] }
        let middle = range.lowerBound + range.count / 2
        return zip(treeSum(leaves, range.lowerBound..<middle), treeSum(leaves, middle..<range.upperBound)).map { $0 + $1 }
    }

    func testOrderedAllReduceGivesTheSingleProcessTreeSumForEveryGroupSize() throws {
        var generator = SplitMix(seed: 7)
        let length = 1001
        let leaves = (0..<8).map { _ in (0..<length).map { _ in Float.random(in: -1...1, using: &generator) * Float([1, 1e-3, 1e4].randomElement(using: &generator)!) } }
        let expected = Self.treeSum(leaves, 0..<8)
        let leftFold = leaves.dropFirst().reduce(leaves[0]) { zip($0, $1).map { $0 + $1 } }
        XCTAssertNotEqual(expected, leftFold, "the data must be sensitive to the summation order")
        for worldSize in [1, 2, 4, 8] {
            let results = LocalFabric.run(worldSize: worldSize) { transport -> [Float] in
                // Each member first sums its own node of leaves in tree order, as a trainer does.
                let per = 8 / worldSize, mine = (transport.rank * per)..<((transport.rank + 1) * per)
                var values = Self.treeSum(leaves, mine)
                try values.withUnsafeMutableBufferPointer {
                    try Communicator(world: transport).orderedAllReduce($0, tree: ReductionTree(leaves: 8))
                }
                return values
            }
            for (rank, result) in results.enumerated() {
                let values = try result.get()
                XCTAssertTrue(zip(values, expected).allSatisfy { $0.bitPattern == $1.bitPattern }, "group of \(worldSize), rank \(rank)")
            }
        }
        // A group size whose shares are not nodes of the tree is refused, not silently reordered.
        let refused = LocalFabric.run(worldSize: 3) { transport -> Void in
            var values = [Float](repeating: 1, count: 6)
            try values.withUnsafeMutableBufferPointer { try Communicator(world: transport).orderedAllReduce($0, tree: ReductionTree(leaves: 6)) }
        }
        for result in refused { XCTAssertThrowsError(try result.get()) }
    }

    func testSilentRankTimesOutNamingThatRank() throws {
        let start = ContinuousClock.now
        let results = LocalFabric.run(worldSize: 3, timeout: .milliseconds(300)) { transport -> Void in
            let world = Communicator(world: transport)
            if transport.rank == 2 { Thread.sleep(forTimeInterval: 1); return }
            var values = [Float](repeating: 1, count: 10)
            try world.allReduce(&values, algorithm: .naive)
        }
        XCTAssertLessThan((ContinuousClock.now - start).seconds, 5)
        guard case .failure(let error) = results[0], case TransportError.peerTimedOut(let rank, let operation, _) = error else {
            return XCTFail("rank 0 should time out, got \(results[0])")
        }
        XCTAssertEqual(rank, 2)
        XCTAssertTrue(operation.contains("all-reduce (naive)"), operation)
        XCTAssertTrue("\(error)".contains("rank 2 did not answer"))
    }

    func testMismatchedSizesNameBothSides() throws {
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(2)) { transport -> Void in
            var values = [Float](repeating: 1, count: transport.rank == 0 ? 10 : 11)
            try Communicator(world: transport).allReduce(&values, algorithm: .naive)
        }
        guard case .failure(let error) = results[0],
              case TransportError.sizeMismatch(_, let receiver, let expected, let sender, let sent) = error else {
            return XCTFail("rank 0 should report a size mismatch, got \(results[0])")
        }
        XCTAssertEqual([receiver, expected, sender, sent], [0, 40, 1, 44])
    }

    /// All-to-all-v refuses counts that do not describe its input, and an output too small for what arrives, saying which.
    func testUnevenAllToAllRefusesCountsThatDoNotFit() throws {
        let badCounts = LocalFabric.run(worldSize: 2, timeout: .seconds(5)) { transport -> Void in
            let input = [Float](repeating: 1, count: 3)
            var output = [Float](repeating: 0, count: 8)
            try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try Communicator(world: transport).allToAllV(i, sendCounts: [1, 1], into: $0) } }
        }
        for result in badCounts {
            XCTAssertThrowsError(try result.get()) { XCTAssertTrue("\($0)".contains("summing to the input's 3 floats"), "\($0)") }
        }
        let small = LocalFabric.run(worldSize: 2, timeout: .seconds(5)) { transport -> Void in
            let input = [Float](repeating: 1, count: 6)
            var output = [Float](repeating: 0, count: transport.rank == 0 ? 2 : 8)
            try input.withUnsafeBufferPointer { i in try output.withUnsafeMutableBufferPointer { try Communicator(world: transport).allToAllV(i, sendCounts: [3, 3], into: $0) } }
        }
        XCTAssertThrowsError(try small[0].get()) { XCTAssertTrue("\($0)".contains("more than the output's 2"), "\($0)") }
    }

    func testDepartedPeerIsReportedNotWaitedFor() throws {
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(20)) { transport -> Void in
            if transport.rank == 1 { return }
            var values = [Float](repeating: 1, count: 4)
            try Communicator(world: transport).allReduce(&values)
        }
        guard case .failure(TransportError.peerDied(rank: 1, _)) = results[0] else {
            return XCTFail("rank 0 should see rank 1 leave, got \(results[0])")
        }
    }

    func testSubgroupMustContainCallerAndDistinctRanks() throws {
        let results = LocalFabric.run(worldSize: 4) { transport -> Void in
            let world = Communicator(world: transport)
            XCTAssertThrowsError(try world.subgroup([0, 0, 1]))
            XCTAssertThrowsError(try world.subgroup([(transport.rank + 1) % 4]))
            XCTAssertThrowsError(try world.subgroup([0, 9]))
        }
        for result in results { XCTAssertNoThrow(try result.get()) }
    }

    func testBlockPartitionCoversEveryElementOnce() {
        for count in 0...50 {
            for parts in 1...9 {
                let p = BlockPartition(count: count, parts: parts)
                let ranges = (0..<parts).map(p.range)
                XCTAssertEqual(ranges.map(\.count).reduce(0, +), count)
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertLessThanOrEqual((ranges.map(\.count).max() ?? 0) - (ranges.map(\.count).min() ?? 0), 1)
            }
        }
    }
}

/// A small seeded generator, so failing random cases can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
