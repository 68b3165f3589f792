/// nccl-tests-style measurement of one collective at one size, run by every member.
public struct CollectiveBenchmark {
    public enum Operation: String, Sendable, CaseIterable {
        case allreduce, allgather, reducescatter, broadcast, reduce, alltoall

        /// nccl-tests' factor from algorithm bandwidth to bus bandwidth.
        public func busFactor(ranks n: Int) -> Double {
            guard n > 1 else { return 0 }
            switch self {
            case .allreduce: return 2 * Double(n - 1) / Double(n)
            case .allgather, .reducescatter, .alltoall: return Double(n - 1) / Double(n)
            case .broadcast, .reduce: return 1
            }
        }
    }

    /// One measured row; `timeSeconds` is the median over repetitions of the slowest rank's time.
    public struct Result: Sendable {
        public var operation: Operation
        public var algorithm: String
        public var transport: String
        public var ranks: Int
        public var bytes: Int
        public var timeSeconds: Double
        public var maxAbsError: Double
        public var verified: Bool { maxAbsError == 0 }
        public var algorithmBandwidth: Double { timeSeconds > 0 ? Double(bytes) / timeSeconds / 1e9 : 0 }
        public var busBandwidth: Double { algorithmBandwidth * operation.busFactor(ranks: ranks) }
    }

    public let communicator: Communicator
    public var warmup = 2
    public var repetitions = 10

    public init(communicator: Communicator) { self.communicator = communicator }

    /// Small integers: their sums are exact in Float32 in any order, so every algorithm must match bitwise.
    @inline(__always)
    public static func value(rank: Int, index: Int) -> Float {
        Float((index &* 31 &+ rank &* 17) % 9 - 4)
    }

    /// Measures `operation` on `bytes` bytes (the nccl-tests size: the full buffer).
    public func run(_ operation: Operation, algorithm: AllReduceAlgorithm, bytes: Int) throws -> Result {
        let comm = communicator
        let n = comm.size, me = comm.rank
        let count = bytes / MemoryLayout<Float>.stride
        let block = count / n
        var input = [Float](repeating: 0, count: count)
        var expected = [Float](repeating: 0, count: count)
        for i in 0..<count {
            switch operation {
            case .allreduce, .reduce, .reducescatter:
                input[i] = Self.value(rank: me, index: i)
                expected[i] = (0..<n).reduce(Float(0)) { $0 + Self.value(rank: $1, index: i) }
            case .broadcast:
                input[i] = me == 0 ? Self.value(rank: 0, index: i) : .nan
                expected[i] = Self.value(rank: 0, index: i)
            case .allgather:
                let owner = block > 0 ? min(i / block, n - 1) : 0
                input[i] = Self.value(rank: owner, index: i)
                expected[i] = input[i]
            case .alltoall:
                // Block d of rank r's input goes to rank d; block s of the output came from rank s.
                input[i] = block > 0 && i < block * n ? Self.value(rank: me * n + i / block, index: i % block) : 0
                expected[i] = block > 0 && i < block * n ? Self.value(rank: (i / block) * n + me, index: i % block) : 0
            }
        }
        var data = input
        var output = [Float](repeating: 0, count: operation == .alltoall ? block * n : 0)
        let allGatherPartition = BlockPartition(count: count, parts: n)

        func once() throws -> Double {
            data.withUnsafeMutableBufferPointer { d in input.withUnsafeBufferPointer { d.baseAddress!.update(from: $0.baseAddress!, count: count) } }
            if operation == .allgather {
                // Everyone but the owner starts a block with garbage, so a missing transfer cannot verify.
                for r in 0..<n where r != me { for i in allGatherPartition.range(r) { data[i] = .nan } }
            }
            try comm.barrier()
            let start = ContinuousClock.now
            try data.withUnsafeMutableBufferPointer { d in
                switch operation {
                case .allreduce: try comm.allReduce(d, op: .sum, algorithm: algorithm)
                case .reducescatter: try comm.reduceScatter(d)
                case .allgather: try comm.allGather(inPlace: d)
                case .broadcast: try comm.broadcast(d, root: 0)
                case .reduce: try comm.reduce(d, root: 0)
                case .alltoall:
                    try output.withUnsafeMutableBufferPointer { try comm.allToAll(UnsafeBufferPointer(rebasing: d[0..<(block * n)]), into: $0) }
                }
            }
            return (ContinuousClock.now - start).seconds
        }

        for _ in 0..<warmup { _ = try once() }
        var times = try (0..<repetitions).map { _ in try once() }
        // Which part of the buffer each rank can check after the last repetition.
        let checked: Range<Int>
        switch operation {
        case .reducescatter: checked = BlockPartition(count: count, parts: n).range(me)
        case .reduce: checked = me == 0 ? 0..<count : 0..<0
        case .alltoall: checked = 0..<(block * n)
        default: checked = 0..<count
        }
        let result = operation == .alltoall ? output : data
        var error: Float = 0
        for i in checked {
            let difference = abs(result[i] - expected[i])
            error = difference.isNaN ? .infinity : max(error, difference)
        }
        times.append(Double(error))
        var agreed = times.map(Float.init)
        try comm.allReduce(&agreed, op: .max, algorithm: .naive)
        let slowest = agreed.dropLast().map(Double.init).sorted()
        let name: String
        switch operation {
        case .allreduce: name = algorithm.rawValue
        case .allgather, .reducescatter: name = "ring"
        case .broadcast, .reduce: name = "binomial"
        case .alltoall: name = "pairwise"
        }
        return Result(operation: operation, algorithm: name, transport: comm.transport.backendName, ranks: n, bytes: count * 4,
                      timeSeconds: slowest[slowest.count / 2], maxAbsError: Double(agreed.last!))
    }
}
