import Foundation
import XCTest
import Collectives

/// The single-copy path of the ZeroMQ transport (ranks on one host without shared-memory
/// lanes), with two ranks as threads of this process (one process id, so the kernel lets
/// each read the other's memory).
final class ZMQSingleCopyTests: XCTestCase {
    /// Runs `body` on two ZeroMQ ranks, each configured by `configure` first.
    private func twoRanks<T>(_ configure: @escaping (ZMQTransport) -> Void,
                             _ body: @escaping (ZMQTransport) throws -> T) throws -> [T] {
        let coordinator = "ipc:///tmp/fleet-single-copy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let lock = NSLock()
        var results: [Int: Result<T, Error>] = [:]
        let group = DispatchGroup()
        for rank in 0..<2 {
            group.enter()
            let thread = Thread {
                let result = Result<T, Error> {
                    var configuration = ZMQTransport.Configuration(rank: rank, worldSize: 2, coordinator: coordinator,
                                                                   bind: "tcp://127.0.0.1:*")
                    configuration.rendezvousTimeout = .seconds(20)
                    let transport = try ZMQTransport(configuration)
                    defer { transport.shutdown() }
                    transport.timeout = .seconds(20)
                    configure(transport)
                    return try body(transport)
                }
                lock.lock(); results[rank] = result; lock.unlock()
                group.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        return try (0..<2).map { try results[$0]!.get() }
    }

    private func exactAllReduce(_ transport: Transport, count: Int) throws -> [Float] {
        let world = Communicator(world: transport)
        world.chunkBytes = 64 << 10
        var values = (0..<count).map { CollectiveBenchmark.value(rank: transport.rank, index: $0) }
        try world.allReduce(&values, algorithm: .ring)
        return values
    }

    private func expected(count: Int) -> [Float] {
        (0..<count).map { CollectiveBenchmark.value(rank: 0, index: $0) + CollectiveBenchmark.value(rank: 1, index: $0) }
    }

    /// The shared-memory decorator around ZeroMQ, in-process: the two ranks share a host, so
    /// every message between them goes through the lanes, and sums come out exact.
    func testSharedMemoryLanesWrapTheTransportAndSumExactly() throws {
        let count = 300_001
        let results = try twoRanks({ _ in }) { transport -> ([Float], Int) in
            let lanes = try SharedMemoryTransport.wrap(transport)
            defer { lanes.shutdown() }
            return (try self.exactAllReduce(lanes, count: count), lanes.sharedMemoryPeers)
        }
        for (values, peers) in results {
            XCTAssertEqual(peers, 1, "the other rank is reached through shared memory")
            XCTAssertEqual(values.map(\.bitPattern), expected(count: count).map(\.bitPattern))
        }
    }

    func testRanksOnOneHostCopyStraightFromTheSendersMemory() throws {
        let count = 300_001
        let reads = Counter()
        let results = try twoRanks({ transport in
            transport.singleCopyBytes = 1024
            let kernel = transport.singleCopyReader
            transport.singleCopyReader = { process, buffer, address in
                reads.add()
                return kernel(process, buffer, address)
            }
        }, { try self.exactAllReduce($0, count: count) })
        XCTAssertEqual(results[0], expected(count: count))
        XCTAssertEqual(results[1], expected(count: count))
        XCTAssertGreaterThan(reads.value, 0, "no message took the single-copy path")
    }

    /// Where the kernel refuses cross-memory reads (EPERM), the receiver says so and the
    /// bytes travel over the socket: the result is the same, and later messages to that
    /// peer no longer try.
    func testRefusedReadsFallBackToTheSocket() throws {
        let count = 300_001
        let attempts = Counter()
        let results = try twoRanks({ transport in
            transport.singleCopyBytes = 1024
            transport.singleCopyReader = { _, _, _ in
                attempts.add()
                return -Int(EPERM)
            }
        }, { transport -> [Float] in
            let first = try self.exactAllReduce(transport, count: count)
            try Communicator(world: transport).barrier()
            let refusedSoFar = attempts.value
            let second = try self.exactAllReduce(transport, count: count)
            try Communicator(world: transport).barrier()
            XCTAssertEqual(attempts.value, refusedSoFar, "a refused peer kept receiving descriptors")
            XCTAssertEqual(first, second)
            return second
        })
        XCTAssertEqual(results[0], expected(count: count))
        XCTAssertEqual(results[1], expected(count: count))
        XCTAssertGreaterThan(attempts.value, 0)
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
