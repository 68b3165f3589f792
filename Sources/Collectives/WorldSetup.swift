import CFleetSys
import Foundation

/// Which backend a worker process uses.
public enum TransportKind: String, Sendable, CaseIterable {
    case mpi, zmq, local
}

/// Picks and opens this process's transport.
public enum WorldSetup {
    /// Pins this process to core `rank mod cores`, as `mpirun --bind-to core --map-by core`
    /// places ranks: which ranks share a core is then known, and the same from run to run.
    public static func pin(rank: Int) {
        _ = fleet_pin_to_cpu(Int32(rank % ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The process was started as one of several workers (by mpirun or by fleet's launcher).
    public static var isWorker: Bool {
        MPITransport.isUnderMPIRun || ZMQTransport.Configuration.fromEnvironment() != nil
    }

    /// Opens the transport of a worker process: MPI under mpirun, ZeroMQ under fleet's
    /// launcher (or an external coordinator), a one-rank world otherwise.
    public static func open(_ requested: TransportKind?) throws -> Transport {
        if MPITransport.isUnderMPIRun {
            if let requested, requested != .mpi {
                throw TransportError.unsupported("this process runs under mpirun, which provides the MPI transport; "
                    + "drop --transport \(requested.rawValue) or run without mpirun (use --ranks N to self-launch ZeroMQ workers)")
            }
            return try MPITransport()
        }
        if let configuration = ZMQTransport.Configuration.fromEnvironment() {
            LocalLauncher.bindToLauncher()
            let transport = try ZMQTransport(configuration)
            if ProcessInfo.processInfo.environment["FLEET_PIN_CORES"] == "1" { pin(rank: transport.rank) }
            return transport
        }
        if requested == .mpi { return try MPITransport() }
        return LocalFabric(worldSize: 1).endpoint(rank: 0)
    }

    /// ZeroMQ between the ranks that mpirun started, beside their MPI transport (so the two
    /// can be measured side by side): MPI tells every rank where rank 0's coordinator listens,
    /// an ipc path unless `FLEET_ZMQ_COORDINATOR` names one (`FLEET_ZMQ_BIND` for the inboxes).
    public static func zeroMQ(alongside mpi: MPITransport) throws -> ZMQTransport {
        let env = ProcessInfo.processInfo.environment
        let base = try mpi.broadcast(env["FLEET_ZMQ_COORDINATOR"] ?? "ipc:///tmp/fleet-mpi-\(getpid())", root: 0)
        let ipc = base.hasPrefix("ipc://") && env["FLEET_ZMQ_COORDINATOR"] == nil
        let configuration = ZMQTransport.Configuration(
            rank: mpi.rank, worldSize: mpi.worldSize, coordinator: ipc ? base + "-coordinator" : base,
            bind: env["FLEET_ZMQ_BIND"] ?? (ipc ? base + "-rank-\(mpi.rank)" : "tcp://127.0.0.1:*"))
        return try ZMQTransport(configuration)
    }
}
