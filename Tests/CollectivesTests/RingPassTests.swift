import Collectives
import XCTest

/// The ring attention pass: every member's block reaches every rank, each seen once as it
/// lands, own block first and then round the ring from the left.
final class RingPassTests: XCTestCase {
    func testEveryBlockArrivesOnceInRingOrder() throws {
        for (size, block) in [(1, 5), (2, 1), (3, 7), (4, 0), (4, 33)] {
            let results = LocalFabric.run(worldSize: size, timeout: .seconds(30)) { transport -> ([Int], [Float], [Bool]) in
                let world = Communicator(world: transport), rank = transport.rank
                let local = (0..<block).map { Float(rank * 1000 + $0) }
                var blocks = [Float](repeating: -1, count: block * size), order: [Int] = [], complete: [Bool] = []
                try local.withUnsafeBufferPointer { input in
                    try blocks.withUnsafeMutableBufferPointer { output in
                        try world.ringPass(input, into: output) { r in
                            order.append(r)
                            // The block handed over is already whole when its turn comes.
                            complete.append((0..<block).allSatisfy { output[r * block + $0] == Float(r * 1000 + $0) })
                        }
                    }
                }
                return (order, blocks, complete)
            }
            for (rank, result) in results.enumerated() {
                let (order, blocks, complete) = try result.get()
                XCTAssertEqual(order, (0..<size).map { (rank - $0 + size) % size }, "size \(size), rank \(rank)")
                XCTAssertEqual(blocks, (0..<size).flatMap { r in (0..<block).map { Float(r * 1000 + $0) } }, "size \(size), rank \(rank)")
                XCTAssertTrue(complete.allSatisfy { $0 }, "size \(size), rank \(rank)")
            }
        }
    }

    func testAWrongOutputSizeIsRefused() {
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(30)) { transport in
            var out = [Float](repeating: 0, count: 3)
            try [Float](repeating: 1, count: 2).withUnsafeBufferPointer { input in
                try out.withUnsafeMutableBufferPointer { try Communicator(world: transport).ringPass(input, into: $0) { _ in } }
            }
        }
        for result in results { XCTAssertThrowsError(try result.get()) { XCTAssertTrue("\($0)".contains("needs 2 × 2"), "\($0)") } }
    }
}
