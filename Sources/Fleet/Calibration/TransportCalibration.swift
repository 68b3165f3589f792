import Collectives
import Foundation

/// What one transport measured: one-way point-to-point time per size (ping-pong between the
/// first and the last rank, halved), the α–β fit, and all-reduce times per algorithm.
struct TransportFigures: Codable {
    var transport: String
    var ranks: Int
    var pingPong: [Int: Measurement] = [:]
    /// Latency (s) and bandwidth (B/s) of `t = α + bytes/β`.
    var alpha = 0.0, beta = 0.0
    var allReduce: [String: [Int: Measurement]] = [:]
    /// One-way time of 8 B between the first and last rank while the ranks between them
    /// compute (measured only with more ranks than cores).
    var loadedLatency: Measurement?

    static let pingPongSizes = [8, 4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]
    static let allReduceSizes = [64 << 10, 256 << 10, 1 << 20, 4 << 20]

    /// α: the one-way time of the smallest message; β: least squares through the origin of
    /// (bytes, time − α) over the sizes from 64 KiB up, where the bytes dominate.
    mutating func fit() {
        guard let small = pingPong[Self.pingPongSizes[0]] else { return }
        alpha = small.median
        var sxy = 0.0, sxx = 0.0
        for (bytes, m) in pingPong where bytes >= 64 << 10 {
            sxy += Double(bytes) * (m.median - alpha)
            sxx += Double(bytes) * Double(bytes)
        }
        beta = sxy > 0 ? sxx / sxy : 0
    }

    /// Measures on `transport` (every rank calls this); rank 0's result is complete.
    static func measure(on transport: Transport, repeats: Int, algorithms: [AllReduceAlgorithm]) throws -> TransportFigures {
        var figures = TransportFigures(transport: transport.backendName, ranks: transport.worldSize)
        let communicator = Communicator(world: transport)
        let last = transport.worldSize - 1, me = transport.rank
        for bytes in pingPongSizes {
            var buffer = [UInt8](repeating: UInt8(me), count: bytes)
            let rounds = bytes <= 64 << 10 ? 200 : bytes <= 1 << 20 ? 40 : 8
            var samples: [Double] = []
            for r in 0..<(repeats + 1) {
                try communicator.barrier()
                let seconds = try Measurement.clock {
                    for _ in 0..<rounds {
                        try buffer.withUnsafeMutableBytes { raw in
                            if me == 0 {
                                try transport.send(UnsafeRawBufferPointer(raw), to: last, tag: 7)
                                try transport.recv(into: raw, from: last, tag: 7)
                            } else if me == last {
                                try transport.recv(into: raw, from: 0, tag: 7)
                                try transport.send(UnsafeRawBufferPointer(raw), to: 0, tag: 7)
                            }
                        }
                    }
                }
                if r > 0 { samples.append(seconds / Double(rounds) / 2) }
            }
            figures.pingPong[bytes] = Measurement(samples)
        }
        figures.fit()
        if transport.worldSize > ProcessInfo.processInfo.activeProcessorCount && transport.worldSize > 2 {
            figures.loadedLatency = Measurement(try (0..<repeats).map { _ in try loadedPingPong(transport, communicator) })
        }
        var benchmark = CollectiveBenchmark(communicator: communicator)
        benchmark.warmup = 2
        benchmark.repetitions = 9
        for algorithm in algorithms {
            for bytes in allReduceSizes {
                // Each repeat is itself the median of nine timed calls.
                let samples = try (0..<repeats).map { _ in try benchmark.run(.allreduce, algorithm: algorithm, bytes: bytes).timeSeconds }
                figures.allReduce[algorithm.rawValue, default: [:]][bytes] = Measurement(samples)
            }
        }
        return figures
    }

    /// The ranks between the first and the last compute (no transport calls, so they keep
    /// their cores until the scheduler takes them) while the two ends ping-pong for half a
    /// second; the first rank's flag in each message says whether to go on.
    static func loadedPingPong(_ transport: Transport, _ communicator: Communicator) throws -> Double {
        let me = transport.rank, last = transport.worldSize - 1
        var seconds = 0.0
        try communicator.barrier()
        if me != 0 && me != last {
            let start = ContinuousClock.now
            var x = 1.0
            while (ContinuousClock.now - start) < .milliseconds(700) { for _ in 0..<10_000 { x = x * 1.000001 + 1e-9 } }
            if x.isNaN { print(x) }
        } else {
            var flag: Int64 = 1
            var rounds = 0
            let start = ContinuousClock.now
            while flag == 1 {
                try withUnsafeMutableBytes(of: &flag) { raw in
                    if me == 0 {
                        raw.storeBytes(of: (ContinuousClock.now - start) < .milliseconds(500) ? 1 : 0, as: Int64.self)
                        try transport.send(UnsafeRawBufferPointer(raw), to: last, tag: 8)
                        try transport.recv(into: raw, from: last, tag: 8)
                    } else {
                        try transport.recv(into: raw, from: 0, tag: 8)
                        try transport.send(UnsafeRawBufferPointer(raw), to: 0, tag: 8)
                    }
                }
                rounds += 1
            }
            seconds = (ContinuousClock.now - start).seconds / Double(rounds) / 2
        }
        try communicator.barrier()
        return seconds
    }
}
