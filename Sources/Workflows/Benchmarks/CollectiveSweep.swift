import Collectives
import Foundation

/// `fleet bench collectives`: fleet's algorithms over one transport and MPI's own all-reduce
/// over MPI, size by size, every algorithm taking its turn in each round.
public struct CollectiveSweep {
    /// One measured size and algorithm, with its bus bandwidth relative to MPI's own.
    public struct Row: Sendable {
        public let result: CollectiveBenchmark.Result
        /// busbw / native busbw, nil when native was not measured.
        public let vsNative: Double?

        /// The row as `--json` prints it.
        public var record: [(String, Any)] {
            [("op", result.operation.rawValue), ("algo", result.algorithm), ("transport", result.transport),
             ("ranks", result.ranks), ("bytes", result.bytes), ("time_s", result.timeSeconds),
             ("algbw_GBps", result.algorithmBandwidth), ("busbw_GBps", result.busBandwidth),
             ("verified", result.verified), ("max_abs_error", result.maxAbsError), ("repetitions", result.repetitions),
             ("vs_native", vsNative ?? Double.nan)]
        }

        /// The row as the table prints it.
        public var cells: [String] {
            [ByteSize(bytes: result.bytes).description, result.algorithm, String(format: "%.1f", result.timeSeconds * 1e6),
             String(format: "%.3f", result.algorithmBandwidth), String(format: "%.3f", result.busBandwidth),
             result.verified ? "yes" : "NO", String(format: "%g", result.maxAbsError), vsNative.map { String(format: "%.2fx", $0) } ?? "-"]
        }
    }

    public static let table = Table(columns: [("size", 9), ("algo", 8), ("time(us)", 11), ("algbw(GB/s)", 11),
                                              ("busbw(GB/s)", 11), ("verified", 8), ("max_err", 8), ("vs native", 9)])

    public var operation: CollectiveBenchmark.Operation
    /// All-reduce algorithms (other operations use the ring).
    public var algorithms: [AllReduceAlgorithm]
    public var iterations = 10
    public var warmup = 2
    public var secondsPerSize = 0.2
    public var chunkBytes = 1 << 20

    public init(operation: CollectiveBenchmark.Operation, algorithms: [AllReduceAlgorithm]) {
        self.operation = operation
        self.algorithms = operation == .allreduce ? algorithms : [.ring]
    }

    /// Measures every size; `row` sees each result as it is made (on every rank). Throws once
    /// all sizes ran if any result did not verify against the exact sums.
    public func run(on transport: Transport, native mpi: MPITransport?, sizes: [Int], row: (Row) -> Void) throws {
        if algorithms.contains(.native) && mpi == nil {
            throw FleetError("--algo native is MPI_Allreduce: run under mpirun (or drop native)")
        }
        func benchmark(_ transport: Transport) -> CollectiveBenchmark {
            let communicator = Communicator(world: transport)
            communicator.chunkBytes = chunkBytes
            var benchmark = CollectiveBenchmark(communicator: communicator)
            benchmark.warmup = warmup
            return benchmark
        }
        let fleetBenchmark = benchmark(transport), nativeBenchmark = mpi.map(benchmark)
        // Every algorithm takes its turn in each round, so drift on a shared machine hits them alike.
        let ordered = algorithms.sorted { a, _ in a == .native }
        var failures = 0
        for size in sizes {
            // Big buffers take long; fewer repetitions keep the sweep short without changing the median much.
            let repetitions = size >= 64 << 20 ? min(iterations, 5) : iterations
            let trials = ordered.map { ($0 == .native ? nativeBenchmark! : fleetBenchmark).trial(operation, algorithm: $0, bytes: size) }
            let results = try CollectiveBenchmark.interleaved(trials, warmup: max(warmup, secondsPerSize > 0 ? 1 : 0),
                                                              repetitions: repetitions, minimumSeconds: secondsPerSize)
            let native = zip(ordered, results).first { $0.0 == .native }?.1.busBandwidth
            for result in results {
                if !result.verified { failures += 1 }
                row(Row(result: result, vsNative: native.map { $0 > 0 ? result.busBandwidth / $0 : 0 }))
            }
        }
        if failures > 0 { throw TransportError.backend("\(failures) measurement(s) did not verify against the exact sums") }
    }
}
