import ArgumentParser
import Collectives
import Foundation
import Workflows

struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives",
        abstract: "Time collectives nccl-tests style: time, algbw, busbw and a bitwise check per size and algorithm.",
        discussion: """
        Examples:
          mpirun -n 4 fleet bench collectives --op allreduce --algo ring,native --sizes 4KiB:256MiB
          fleet bench collectives --transport zmq --ranks 4 --sizes 64MiB
          mpirun -n 2 fleet bench collectives --transport zmq --algo ring,native --sizes 16MiB:64MiB

        Under mpirun, --transport zmq connects the same ranks over ZeroMQ too: fleet's
        algorithms then run over ZeroMQ and native (MPI_Allreduce) over MPI, side by side.
        """)

    @OptionGroup var workers: WorkerOptions

    @Option(help: "Operation: \(CollectiveBenchmark.Operation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var op: String = "allreduce"

    @Option(help: "All-reduce algorithms, comma-separated: ring, hd, tree, naive, native (MPI only).")
    var algo: String = "ring"

    @Option(help: "Sizes: 64MiB, 4KiB:256MiB (doubling) or a comma-separated list.")
    var sizes: SizeList = SizeList(argument: "4KiB:64MiB")!

    @Option(help: "Timed repetitions per size, at least (the median is reported).")
    var iters: Int = 10

    @Option(name: .customLong("seconds-per-size"),
            help: "Short sizes repeat beyond --iters until their timed rounds take about this long (0: exactly --iters).")
    var secondsPerSize: Double = 0.2

    @Option(help: "Untimed repetitions before timing.")
    var warmup: Int = 2

    @Option(help: "Chunk size of the pipelined algorithms.")
    var chunk: ByteSize = ByteSize(bytes: 1 << 20)

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    func validate() throws {
        guard CollectiveBenchmark.Operation(rawValue: op) != nil else {
            throw ValidationError("unknown --op \(op); choose one of \(CollectiveBenchmark.Operation.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        for name in algo.split(separator: ",") where AllReduceAlgorithm(name: String(name)) == nil {
            throw ValidationError("unknown --algo \(name); choose from ring, hd, tree, naive, native")
        }
        if algo.split(separator: ",").contains("native") && !MPITransport.isUnderMPIRun && workers.transport != .mpi {
            throw ValidationError("--algo native is MPI_Allreduce: run under mpirun (or drop native)")
        }
        guard iters >= 1, warmup >= 0, secondsPerSize >= 0 else {
            throw ValidationError("--iters must be ≥ 1, --warmup and --seconds-per-size ≥ 0")
        }
        guard chunk.bytes >= 4 else { throw ValidationError("--chunk must be at least 4 bytes") }
    }

    func run() throws {
        try Console.reportingErrors {
            if MPITransport.isUnderMPIRun && workers.transport == .zmq {
                let mpi = try MPITransport()
                defer { shutDown(mpi) }
                try Console.reportingErrors(rank: mpi.worldSize > 1 ? mpi.rank : nil) {
                    let zmq = try WorldSetup.zeroMQ(alongside: mpi, sharedMemory: Settings.current.sharedMemory)
                    defer { shutDown(zmq) }
                    for transport in [mpi, zmq] as [Transport] { transport.timeout = .milliseconds(Int(workers.timeout * 1000)) }
                    try measure(on: zmq, native: mpi)
                }
                return
            }
            guard let transport = try workers.workerTransport() else { return }
            defer { shutDown(transport) }
            try Console.reportingErrors(rank: transport.worldSize > 1 ? transport.rank : nil) {
                try measure(on: transport, native: transport.mpi)
            }
        }
    }

    /// Runs fleet's algorithms over `transport` and native (MPI_Allreduce) over `mpi`.
    private func measure(on transport: Transport, native mpi: MPITransport?) throws {
        var sweep = CollectiveSweep(operation: CollectiveBenchmark.Operation(rawValue: op)!,
                                    algorithms: algo.split(separator: ",").compactMap { AllReduceAlgorithm(name: String($0)) })
        (sweep.iterations, sweep.warmup, sweep.secondsPerSize, sweep.chunkBytes) = (iters, warmup, secondsPerSize, chunk.bytes)
        let leader = transport.rank == 0
        if leader && !json {
            let baseline = mpi.map { $0 !== transport && sweep.algorithms.contains(.native) ? " (native: MPI_Allreduce over \($0.backendName))" : "" } ?? ""
            let lanes = transport.sharedMemoryPeers > 0 ? "; ranks on this host talk through shared memory (FLEET_SHM=off: through \(transport.backendName) itself)" : ""
            Console.out("# fleet bench collectives: \(sweep.operation.rawValue) over \(transport.backendName)\(baseline), \(transport.worldSize) ranks\(lanes)")
            let cores = WorldSetup.usableCores, onHost = transport.sharedMemoryPeers + 1
            if onHost > cores {
                Console.out("# \(onHost) ranks share \(cores) cores here: small sizes measure the scheduler as much as the algorithm; repeat runs and compare ranges")
            }
            Console.out(CollectiveSweep.table.header())
        }
        try sweep.run(on: transport, native: mpi, sizes: sizes.sizes.map(\.bytes)) { row in
            guard leader else { return }
            if json { Console.json(row.record) } else { Console.out(CollectiveSweep.table.row(row.cells)) }
        }
    }
}
