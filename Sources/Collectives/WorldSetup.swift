import CFleetSys
import Foundation

/// Which backend a worker process uses.
public enum TransportKind: String, Sendable, CaseIterable {
    case mpi, zmq, local
}

/// Picks and opens this process's transport.
public enum WorldSetup {
    /// Pins this process to the `rank mod n`-th of the n cores it may run on, as `mpirun
    /// --bind-to core --map-by core` places ranks: which ranks share a core is then known, and
    /// the same from run to run. Cores outside the process's affinity (`taskset -c 0 fleet …`)
    /// are never used.
    public static func pin(rank: Int) {
        // Read before pinning narrows this process's affinity to one core.
        _ = usableCores
        let allowed = allowedCPUs()
        guard !allowed.isEmpty else { return }
        _ = fleet_pin_to_cpu(allowed[rank % allowed.count])
    }

    /// The cores this process's ranks share: its affinity when it started (`taskset -c 0
    /// fleet …` gives one), which `ProcessInfo.activeProcessorCount` ignores on Linux. A rank
    /// that mpirun bound to one core shares the machine's cores with its peers.
    public static let usableCores: Int = {
        let count = allowedCPUs().count
        if count <= 0 || (count == 1 && MPITransport.isUnderMPIRun) { return ProcessInfo.processInfo.activeProcessorCount }
        return count
    }()

    private static func allowedCPUs() -> [Int32] {
        var allowed = [Int32](repeating: 0, count: 1024)
        let count = Int(fleet_allowed_cpus(&allowed, Int32(allowed.count)))
        return Array(allowed.prefix(max(0, count)))
    }

    /// Opens the transport of a worker process: MPI under mpirun, ZeroMQ for a worker started
    /// by fleet's launcher (`role`) or given an external coordinator (`zmq`), a one-rank world
    /// otherwise. `pin` binds the process to core `rank mod cores`; with `sharedMemory`, ranks on
    /// one host exchange their messages through shared-memory lanes (`SharedMemoryTransport`).
    public static func open(_ requested: TransportKind?, role: WorkerRole? = nil, zmq external: ZMQTransport.Configuration? = nil,
                            pin: Bool = false, sharedMemory: Bool = true) throws -> Transport {
        let lanes = { (transport: HostAwareTransport) throws -> Transport in
            sharedMemory ? try SharedMemoryTransport.wrap(transport) : transport
        }
        if MPITransport.isUnderMPIRun {
            if let requested, requested != .mpi {
                throw TransportError.unsupported("this process runs under mpirun, which provides the MPI transport; "
                    + "drop --transport \(requested.rawValue) or run without mpirun (use --ranks N to self-launch ZeroMQ workers)")
            }
            let transport = try MPITransport()
            // mpirun binds ranks itself; FLEET_PIN_CORES reaches a rank when mpirun cannot (test hosts, see ChildProcess.mpirun).
            if pin { Self.pin(rank: transport.rank) }
            return try lanes(transport)
        }
        if var configuration = role?.zmq ?? external {
            LocalLauncher.bindToLauncher(role?.launcherPID)
            configuration.key = try JobKey.fromEnvironment()
            if configuration.key == nil, configuration.bind.hasPrefix("tcp://"), !configuration.bind.hasPrefix("tcp://127.") {
                FileHandle.standardError.write(Data(("fleet: warning: rank \(configuration.rank) listens on \(configuration.bind) without a job key: "
                    + "anyone who reaches it can join the job; set \(JobKey.variable) to the same secret on every rank (fleet's launcher does)\n").utf8))
            }
            let transport = try ZMQTransport(configuration)
            if pin { Self.pin(rank: transport.rank) }
            return try lanes(transport)
        }
        if requested == .mpi { return try lanes(MPITransport()) }
        return LocalFabric(worldSize: 1).endpoint(rank: 0)
    }

    /// ZeroMQ between the ranks that mpirun started, beside their MPI transport (so the two
    /// can be measured side by side): MPI tells every rank where rank 0's coordinator listens,
    /// an ipc path unless `FLEET_ZMQ_COORDINATOR` names one (`FLEET_ZMQ_BIND` for the inboxes).
    public static func zeroMQ(alongside mpi: MPITransport, sharedMemory: Bool = true) throws -> Transport {
        let env = ProcessInfo.processInfo.environment
        let base = try mpi.broadcast(env["FLEET_ZMQ_COORDINATOR"] ?? "ipc:///tmp/fleet-mpi-\(getpid())", root: 0)
        let ipc = base.hasPrefix("ipc://") && env["FLEET_ZMQ_COORDINATOR"] == nil
        let configuration = ZMQTransport.Configuration(
            rank: mpi.rank, worldSize: mpi.worldSize, coordinator: ipc ? base + "-coordinator" : base,
            bind: env["FLEET_ZMQ_BIND"] ?? (ipc ? base + "-rank-\(mpi.rank)" : "tcp://127.0.0.1:*"))
        let zmq = try ZMQTransport(configuration)
        return sharedMemory ? try SharedMemoryTransport.wrap(zmq) : zmq
    }
}
