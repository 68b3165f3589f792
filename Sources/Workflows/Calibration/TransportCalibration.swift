import Collectives
import Foundation

/// What one transport measured: one-way point-to-point time per size (ping-pong between the
/// first and the last rank, halved), the α–β fit, and all-reduce times per algorithm.
public struct TransportFigures: Codable {
    public var transport: String
    public var ranks: Int
    /// Hosts the ranks ran on (as the transport tells them apart: two test hosts of one machine
    /// are two), machines among them (distinct kernels), and how the ping-pong's bytes travelled
    /// (`shm`, `tcp`, `ipc`, …).
    public var hosts = 1, machines = 1
    public var path = ""
    public var pingPong: [Int: Measurement] = [:]
    /// Latency (s) and bandwidth (B/s) of `t = α + bytes/β`.
    public var alpha = 0.0, beta = 0.0
    public var allReduce: [String: [Int: Measurement]] = [:]
    /// Time of one all-reduce of `meetingBytes` within pairs of ranks (0–1, 2–3, …) that
    /// compute about 2 ms between all-reduces, as tensor-parallel partners do.
    public var loadedMeeting: Measurement?
    /// With two ranks to a core: the cost of passing the turn to the rank on the same core.
    public var handoff: Measurement?
    public static let meetingBytes = 256 << 10

    /// The meeting's time beyond its α–β ring time (2 steps of half the buffer).
    public var meetingWait: Double? { loadedMeeting.map { wait($0.median) } }
    /// `meetingWait` of each repeat, in the order taken.
    public var meetingWaitRepeats: [Double]? { loadedMeeting.map { $0.samples.map(wait) } }

    private func wait(_ meeting: Double) -> Double {
        max(0, meeting - 2 * (alpha + Double(Self.meetingBytes) / 2 / max(beta, 1)))
    }

    public init(transport: String, ranks: Int) {
        self.transport = transport
        self.ranks = ranks
    }

    public static let pingPongSizes = [8, 4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20]
    public static let allReduceSizes = [64 << 10, 256 << 10, 1 << 20, 4 << 20]

    /// α: the one-way time of the smallest message; β: least squares through the origin of
    /// (bytes, time − α) over the sizes from 64 KiB up, where the bytes dominate.
    public mutating func fit() {
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
    /// `cores`: the cores the ranks share (the launcher's; a pinned or bound rank sees only its own).
    public static func measure(on transport: Transport, repeats: Int, algorithms: [AllReduceAlgorithm],
                               cores: Int = WorldSetup.usableCores) throws -> TransportFigures {
        var figures = TransportFigures(transport: transport.backendName, ranks: transport.worldSize)
        let communicator = Communicator(world: transport)
        let last = transport.worldSize - 1, me = transport.rank
        let identities = (0...last).map { transport.host(of: $0) ?? "" }
        figures.hosts = Set(identities).count
        figures.machines = Set(identities.map(Rendezvous.machine(ofHost:))).count
        figures.path = transport.path(to: last)
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
        if transport.worldSize % 2 == 0 {
            figures.loadedMeeting = Measurement(try (0..<repeats).map { _ in try loadedMeeting(transport, communicator) })
        }
        if transport.worldSize == 2 * cores {
            figures.handoff = Measurement(try (0..<repeats).map { _ in try handoff(transport, communicator, cores: cores) })
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

    /// Iterations of a register-only loop that take this rank about 2 ms on a core of its own,
    /// sized by each rank in turn while the others wait.
    public static func workFor2ms(_ transport: Transport, _ communicator: Communicator) throws -> Int {
        var iterations = 0
        for r in 0..<transport.worldSize {
            if r == transport.rank {
                var x = 1.0, n = 0
                let start = ContinuousClock.now
                while (ContinuousClock.now - start) < .milliseconds(20) { for _ in 0..<1000 { x = x * 1.000001 + 1e-9 }; n += 1000 }
                if x.isNaN { print(x) }
                iterations = n / 10
            }
            try communicator.barrier()
        }
        return iterations
    }

    /// Two ranks pinned to one core (rank r and r + cores) pass the turn: each computes ~2 ms,
    /// then sends 8 B to the other, which was waiting for it. Returns, per message, the time
    /// a round took beyond the two computations (the switch from one rank to the other).
    public static func handoff(_ transport: Transport, _ communicator: Communicator, cores: Int) throws -> Double {
        let me = transport.rank
        let iterations = try workFor2ms(transport, communicator)
        var x = 1.0
        func work() { for _ in 0..<iterations { x = x * 1.000001 + 1e-9 } }
        let alone = Measurement.clock { work() }
        let partner = me < cores ? me + cores : me - cores
        var token: Int64 = 0
        let rounds = 100
        try communicator.barrier()
        let elapsed = try Measurement.clock {
            for _ in 0..<rounds {
                try withUnsafeMutableBytes(of: &token) { raw in
                    if me < cores {
                        work()
                        try transport.send(UnsafeRawBufferPointer(raw), to: partner, tag: 9)
                        try transport.recv(into: raw, from: partner, tag: 9)
                    } else {
                        try transport.recv(into: raw, from: partner, tag: 9)
                        work()
                        try transport.send(UnsafeRawBufferPointer(raw), to: partner, tag: 9)
                    }
                }
            }
        }
        if x.isNaN { print(x) }
        var extra = [Float(max(0, (elapsed / Double(rounds) - 2 * alone) / 2))]
        try communicator.allReduce(&extra, op: .max, algorithm: .naive)
        return Double(extra[0])
    }

    /// Pairs of ranks alternate fixed work (about 2 ms on a core of their own, sized by each
    /// rank in turn while the others wait) and an all-reduce; returns the mean time inside
    /// the all-reduce, the slowest rank's.
    public static func loadedMeeting(_ transport: Transport, _ communicator: Communicator) throws -> Double {
        let me = transport.rank
        let iterations = try workFor2ms(transport, communicator)
        let pair = try communicator.subgroup([me - me % 2, me - me % 2 + 1])
        var buffer = [Float](repeating: 1, count: meetingBytes / 4)
        var inside = 0.0, x = 1.0
        let rounds = 150
        for _ in 0..<rounds {
            for _ in 0..<iterations { x = x * 1.000001 + 1e-9 }
            inside += try Measurement.clock { try buffer.withUnsafeMutableBufferPointer { try pair.allReduce($0) } }
        }
        if x.isNaN { print(x) }
        var slowest = [Float(inside / Double(rounds))]
        try communicator.allReduce(&slowest, op: .max, algorithm: .naive)
        return Double(slowest[0])
    }
}
