import ArgumentParser
import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Training
import Workflows
import Workload

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine (kernels, transports, storage) and write a scenario the simulator can predict real runs with.",
        discussion: """
        Measures one-thread sgemm for every product shape the model issues in the layouts of `fleet compare`, the other kernels per element, real one-process steps, point-to-point α and β, all-reduce times and waits under load for ZeroMQ and (when mpirun is installed) MPI, and checkpoint write bandwidth.

        Examples:
          fleet calibrate                           # writes scenarios/local.yaml
          fleet calibrate gpt-tiny --repeats 9 --out my-machine.yaml
          mpirun -H a,b -n 2 fleet calibrate --out cluster.yaml
          fleet calibrate --hosts 198.18.0.1:2,198.18.0.2:2 --out two-hosts.yaml   # inside a host and between hosts (docs/multi-host.md)

        With --hosts (or --hostfile) the scenario has one node per host: the transport between two ranks of the first host is the link inside a node, between the first two hosts the network between nodes. The directory of --out must be visible on every host.
        """)

    @Argument(help: "Model whose kernels are measured: \(ModelCatalog.trainable.map(\.name).joined(separator: ", ")).")
    var model: ModelSpec = ModelCatalog.gptTiny

    @Option(help: "Scenario file to write.")
    var out: String = "scenarios/local.yaml"

    @Option(help: "Repeats of every measurement (the median is kept, the spread reported).")
    var repeats: Int = 5

    @Option(help: "Global batch (sequences per step) whose product shapes are measured.")
    var batch: Int = 8

    @Option(help: "Layouts whose product shapes are measured (comma-separated, e.g. dp2pp2,tp2).")
    var layouts: String = LayoutName.standard.joined(separator: ",")

    @Option(help: "Transports to measure: zmq, mpi (mpi needs mpirun on PATH, or runs under it).")
    var transports: String = "zmq,mpi"

    @Option(help: "Transport whose figures become the scenario's fabric (the one fleet compare will run): mpi when mpirun is installed, else zmq.")
    var fabric: String = ChildProcess.which("mpirun") != nil ? "mpi" : "zmq"

    @Option(help: "Directory checkpoints would be written to (its write bandwidth is measured).")
    var storageDir: String = "."

    @Option(help: .hidden)
    var measureTransport: String?

    @Option(help: .hidden)
    var resultFile: String?

    @Option(help: .hidden)
    var hostCores: Int?

    @OptionGroup var workers: WorkerOptions

    func validate() throws {
        guard (1...1_000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 1,000") }
        guard (1...65_536).contains(batch) else { throw ValidationError("--batch must be between 1 and 65,536 sequences") }
        do { _ = try calibration().shapes() } catch { throw ValidationError("\(error)") }
        for name in transports.split(separator: ",") where !["zmq", "mpi"].contains(name) {
            throw ValidationError("unknown transport '\(name)' in --transports; choose zmq, mpi")
        }
        guard ["zmq", "mpi"].contains(fabric) else { throw ValidationError("--fabric must be zmq or mpi") }
        try OutputPath.check(out, flag: "--out", as: .fileCreatingDirectories)
    }

    func run() throws {
        try Console.reportingErrors {
            if measureTransport != nil { return try transportWorker() }
            if MPITransport.isUnderMPIRun { return try underMPIRun() }
            let calibration = try calibration()
            let hosts = try workers.launchHosts()?.hosts.map(\.address)
            if let hosts {
                guard hosts.count >= 2 else { throw FleetError("--hosts names one host; calibrating between hosts needs two or more (A:2,B:2)") }
                Console.out("calibrating across \(hosts.count) hosts (\(hosts.joined(separator: ", "))): the kernels here, the transports inside \(hosts[0]) and between \(hosts[0]) and \(hosts[1])")
            }
            var result = try calibration.measureMachine()
            result.hosts = hosts ?? []
            // Two ranks per core: messages wait for computing ranks to be scheduled (on one core
            // the two-rank figures are already those, hand-off included).
            let loaded = 2 * result.cores
            for name in transports.split(separator: ",").map(String.init) {
                guard let figures = try calibration.measureTransport(name, ranks: 2, hosts: hosts.map { "\($0[0]):2" }) else { continue }
                result.transports.append(figures)
                if loaded > 2, let busy = try calibration.measureTransport(name, ranks: loaded, hosts: hosts.map { "\($0[0]):\(loaded)" }) {
                    result.transports.append(busy)
                }
                if let hosts, let between = try calibration.measureTransport(name, ranks: 2, hosts: "\(hosts[0]):1,\(hosts[1]):1") {
                    result.transports.append(between)
                }
            }
            try write(result)
        }
    }

    /// The measurements this command's options ask for; progress lines go to the terminal.
    func calibration() throws -> MachineCalibration {
        var calibration = MachineCalibration(model: model, batch: batch, repeats: repeats,
                                             layouts: try layouts.split(separator: ",").map { try LayoutName.parse(String($0)) })
        calibration.storageDirectory = storageDir
        calibration.fabric = fabric
        calibration.timeout = workers.timeout
        let directory = PathName.directory(of: out)
        calibration.resultDirectory = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        calibration.progress = Console.out
        calibration.status = Console.progress
        return calibration
    }

    /// One rank of a transport measurement; rank 0 writes the figures as JSON.
    func transportWorker() throws {
        guard let transport = try workers.workerTransport() else { return }
        defer { shutDown(transport) }
        try Console.reportingErrors(rank: transport.rank) { try calibration().measureTransportAsRank(transport, resultFile: resultFile, cores: hostCores ?? WorldSetup.usableCores) }
    }

    /// Under mpirun every rank measures MPI across the allocation; rank 0 writes the scenario.
    func underMPIRun() throws {
        let transport = try WorldSetup.open(.mpi, sharedMemory: Settings.current.sharedMemory)
        defer { shutDown(transport) }
        try Console.reportingErrors(rank: transport.rank) {
            if let result = try calibration().measureUnderMPIRun(transport) { try write(result) }
        }
    }

    private func write(_ result: CalibrationResult) throws {
        try MachineCalibration.write(result, to: out)
        let hosts = result.hosts.isEmpty ? "" : " --hosts " + result.hosts.joined(separator: ",")
        Console.out("wrote \(out) — next: fleet compare \(model.name) --scenario \(out)\(hosts)")
    }
}
