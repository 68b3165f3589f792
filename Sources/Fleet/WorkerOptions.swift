import ArgumentParser
import Collectives
import Foundation

extension TransportKind: ExpressibleByArgument {}

/// How a command gets its worker processes: under mpirun (MPI), or self-launched (ZeroMQ).
struct WorkerOptions: ParsableArguments {
    @Option(help: "Transport: mpi (under mpirun), zmq (self-launched with --ranks, or given FLEET_ZMQ_COORDINATOR), local.")
    var transport: TransportKind?

    @Option(help: "Worker processes to start on this machine when not under mpirun (ZeroMQ).")
    var ranks: Int = 1

    @Option(help: "Endpoints for self-launched ZeroMQ workers: ipc or tcp (loopback).")
    var endpoints: String = "ipc"

    @Option(help: "Seconds any rank waits for a peer before failing with an error that names it.")
    var timeout: Double = 60

    @Option(help: "Directory for self-launched workers' logs (rank-N.log).")
    var runDir: String?

    @Option(help: "Start the ZeroMQ workers on these hosts, filling each one's slots in order (A:2,B:2), through FLEET_LAUNCH_AGENT (default ssh); fleet must sit at the same path on every host.")
    var hosts: String?

    @Option(help: "Like --hosts, from an OpenMPI-style hostfile (one 'HOST slots=N' per line).")
    var hostfile: String?
    /// How long stopped workers get before they are killed (time to save a checkpoint).
    var stopGrace: Duration?

    /// Launcher extras: arguments appended for the workers, environment set for them, and
    /// whether to launch even one worker (a supervised run restarts its workers).
    var extraArguments: [String] = []
    var extraEnvironment: [String: String] = [:]
    var launchAlways = false

    private enum CodingKeys: String, CodingKey { case transport, ranks, endpoints, timeout, runDir, hosts, hostfile }

    /// The hosts --hosts or --hostfile names, if either does.
    func launchHosts() throws -> LaunchHosts? {
        do {
            if let hosts { return try LaunchHosts(list: hosts) }
            if let hostfile { return try LaunchHosts(hostfile: hostfile) }
        } catch let error as LocalLauncher.LaunchError {
            if case let .cannotStart(reason) = error { throw ValidationError((hosts != nil ? "--hosts: " : "--hostfile: ") + reason) }
            throw error
        }
        return nil
    }

    func validate() throws {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard LocalLauncher.Endpoints(rawValue: endpoints) != nil else { throw ValidationError("--endpoints must be ipc or tcp") }
        if ranks > 1 && MPITransport.isUnderMPIRun {
            throw ValidationError("--ranks starts local ZeroMQ workers; under mpirun the rank count comes from mpirun -n")
        }
        if ranks > 1 && transport == .mpi {
            throw ValidationError("--transport mpi needs mpirun: mpirun -n \(ranks) fleet …")
        }
        if ranks > 1 && transport == .local {
            throw ValidationError("--transport local is a single-process backend for tests; use zmq for --ranks \(ranks)")
        }
        if hosts != nil || hostfile != nil {
            if hosts != nil && hostfile != nil { throw ValidationError("give --hosts or --hostfile, not both") }
            if MPITransport.isUnderMPIRun { throw ValidationError("--hosts places self-launched ZeroMQ workers; under mpirun say where ranks run with mpirun --host or --hostfile") }
            if transport == .mpi || transport == .local { throw ValidationError("--hosts starts ZeroMQ workers; drop --transport \(transport!.rawValue)") }
            _ = try launchHosts()
        }
    }

    /// Either relaunches this command as `ranks` ZeroMQ workers and returns nil once they
    /// all succeed, or (in a worker, or with one rank) opens and returns this process's transport.
    func workerTransport() throws -> Transport? {
        let hosts = try launchHosts()
        if !Settings.current.isWorker && (ranks > 1 || launchAlways || hosts != nil) {
            // Checked here too: commands like `train` set the rank count from the layout after validate().
            if transport == .mpi { throw ValidationError("--transport mpi needs mpirun: mpirun -n \(ranks) fleet …") }
            if transport == .local { throw ValidationError("--transport local is a single-process backend for tests; use zmq for \(ranks) ranks") }
            // Each worker runs this same command, told its role on its command line.
            let command = Array(CommandLine.arguments.dropFirst()) + extraArguments
            var launcher = LocalLauncher(ranks: ranks) { role in ["worker"] + role.arguments + ["--"] + command }
            launcher.environment.merge(extraEnvironment) { _, new in new }
            launcher.endpoints = LocalLauncher.Endpoints(rawValue: endpoints) ?? .ipc
            launcher.logDirectory = runDir
            launcher.hosts = hosts
            if let stopGrace { launcher.gracePeriod = stopGrace }
            // Ranks share the cores: one BLAS thread each unless the user says otherwise.
            if ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == nil {
                launcher.environment["OPENBLAS_NUM_THREADS"] = "1"
            }
            try launcher.run()
            return nil
        }
        let settings = Settings.current
        let transport = try WorldSetup.open(transport, role: Settings.launchedAs, zmq: settings.externalZMQ, pin: settings.pinCores,
                                            sharedMemory: settings.sharedMemory)
        transport.timeout = .milliseconds(Int(timeout * 1000))
        if settings.externalZMQ != nil && transport.worldSize != ranks && ranks > 1 {
            throw ValidationError("this worker belongs to a world of \(transport.worldSize) ranks, not --ranks \(ranks)")
        }
        return transport
    }
}

/// Closes a worker's transport; with FLEET_SHM_REPORT=1 first says how its shared-memory slots went out.
/// After a failure under mpirun the whole job is aborted instead (see `MPITransport.abort`).
func shutDown(_ transport: Transport, failed: Bool = false) {
    if failed, let mpi = transport.mpi { mpi.abort(status: ExitStatus.failure) }
    let lanes = sequence(first: transport) { ($0 as? TransportDecorator)?.inner }.lazy.compactMap { $0 as? SharedMemoryTransport }.first
    if Settings.current.sharedMemoryReport, let lanes { Console.err(lanes.report) }
    transport.shutdown()
}
