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
        /// Timed runs the median is taken over.
        public var repetitions: Int
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
        try Self.interleaved([trial(operation, algorithm: algorithm, bytes: bytes)], warmup: warmup, repetitions: repetitions)[0]
    }

    /// Buffers for timing `operation` with `algorithm` on this benchmark's communicator.
    public func trial(_ operation: Operation, algorithm: AllReduceAlgorithm, bytes: Int) -> Trial {
        Trial(operation: operation, algorithm: algorithm, communicator: communicator, count: bytes / MemoryLayout<Float>.stride)
    }

    /// Times several trials in turns (one repetition of each, then the next round), so that
    /// a machine whose speed drifts (shared, noisy) slows every trial alike and their ratio
    /// holds. Every member must pass the same trials in the same order.
    ///
    /// With `minimumSeconds`, short trials repeat beyond `repetitions` until the rounds take
    /// about that long (at most `maximumRepetitions`): the median of 10 runs of a 100 µs
    /// all-reduce on a busy machine moves by 2× between runs, that of 1000 by a few percent.
    /// The slowest member's last warm-up round sets the count, so every member agrees on it.
    public static func interleaved(_ trials: [Trial], warmup: Int, repetitions: Int, minimumSeconds: Double = 0,
                                   maximumRepetitions: Int = 2000) throws -> [Result] {
        var round = 0.0
        for _ in 0..<warmup { round = try trials.reduce(0) { $0 + (try $1.once()) } }
        var count = repetitions
        if minimumSeconds > 0, let communicator = trials.first?.communicator {
            var slowest = [Float(round)]
            try communicator.allReduce(&slowest, op: .max, algorithm: .naive)
            if slowest[0] > 0 { count = max(repetitions, min(maximumRepetitions, Int((minimumSeconds / Double(slowest[0])).rounded(.up)))) }
        }
        var times = Array(repeating: [Double](), count: trials.count)
        for _ in 0..<count {
            for (index, trial) in trials.enumerated() { times[index].append(try trial.once()) }
        }
        return try zip(trials, times).map { try $0.result(times: $1) }
    }

    /// One operation, algorithm and size with its input, expected result and working buffers.
    public final class Trial {
        let operation: Operation
        let algorithm: AllReduceAlgorithm
        let communicator: Communicator
        let count: Int
        private var input: [Float]
        private var expected: [Float]
        private var data: [Float]
        private var output: [Float]

        init(operation: Operation, algorithm: AllReduceAlgorithm, communicator comm: Communicator, count: Int) {
            self.operation = operation
            self.algorithm = algorithm
            self.communicator = comm
            self.count = count
            let n = comm.size, me = comm.rank
            let block = count / n
            input = [Float](repeating: 0, count: count)
            expected = [Float](repeating: 0, count: count)
            for i in 0..<count {
                switch operation {
                case .allreduce, .reduce, .reducescatter:
                    input[i] = CollectiveBenchmark.value(rank: me, index: i)
                    expected[i] = (0..<n).reduce(Float(0)) { $0 + CollectiveBenchmark.value(rank: $1, index: i) }
                case .broadcast:
                    input[i] = me == 0 ? CollectiveBenchmark.value(rank: 0, index: i) : .nan
                    expected[i] = CollectiveBenchmark.value(rank: 0, index: i)
                case .allgather:
                    let owner = block > 0 ? min(i / block, n - 1) : 0
                    input[i] = CollectiveBenchmark.value(rank: owner, index: i)
                    expected[i] = input[i]
                case .alltoall:
                    // Block d of rank r's input goes to rank d; block s of the output came from rank s.
                    input[i] = block > 0 && i < block * n ? CollectiveBenchmark.value(rank: me * n + i / block, index: i % block) : 0
                    expected[i] = block > 0 && i < block * n ? CollectiveBenchmark.value(rank: (i / block) * n + me, index: i % block) : 0
                }
            }
            data = input
            output = [Float](repeating: 0, count: operation == .alltoall ? block * n : 0)
        }

        /// One timed run (after a barrier) on this rank, in seconds.
        func once() throws -> Double {
            let comm = communicator, n = comm.size, me = comm.rank, count = count, operation = operation
            let block = count / n
            data.withUnsafeMutableBufferPointer { d in input.withUnsafeBufferPointer { d.baseAddress!.update(from: $0.baseAddress!, count: count) } }
            if operation == .allgather {
                // Everyone but the owner starts a block with garbage, so a missing transfer cannot verify.
                let partition = BlockPartition(count: count, parts: n)
                for r in 0..<n where r != me { for i in partition.range(r) { data[i] = .nan } }
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

        /// Checks the last run's output and agrees with every member on the slowest rank's times.
        func result(times: [Double]) throws -> Result {
            let comm = communicator, n = comm.size, me = comm.rank
            let block = count / n
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
            var agreed = (times + [Double(error)]).map(Float.init)
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
                          timeSeconds: slowest[slowest.count / 2], maxAbsError: Double(agreed.last!), repetitions: times.count)
        }
    }
}
