import Collectives
import Foundation
import Training
import Workflows

/// fleet's own environment variables, read once here: the libraries are handed these values
/// (through the trainer's execution context and options), never the environment itself.
struct Settings {
    static let current = Settings(ProcessInfo.processInfo.environment)

    /// FLEET_ATTEMPT: 0, or k in a process restarted by a supervisor for the k-th time.
    var attempt: Int
    /// FLEET_EVENTS: the run's event channel, when a supervisor or campaign listens.
    var events: EventChannel?
    /// A ZeroMQ world started outside fleet: FLEET_RANK, FLEET_WORLD_SIZE, FLEET_ZMQ_COORDINATOR
    /// and optionally FLEET_ZMQ_BIND (fleet's own launcher says this on `fleet worker`'s command line).
    var externalZMQ: ZMQTransport.Configuration?
    /// FLEET_SHM=off: ranks on one host talk through MPI or ZeroMQ itself, not shared-memory lanes.
    var sharedMemory: Bool
    /// FLEET_SHM_REPORT=1: each rank prints how its shared-memory slots went out when it shuts down.
    var sharedMemoryReport: Bool
    /// FLEET_PIN_CORES=1: bind a ZeroMQ worker to core `rank mod cores` (fleet compare and calibrate ask for it).
    var pinCores: Bool

    /// The role `fleet worker` was started with by fleet's launcher, if it was.
    static var launchedAs: WorkerRole?

    /// This process is one of several workers: under mpirun, started by fleet's launcher, or in an external ZeroMQ world.
    var isWorker: Bool { MPITransport.isUnderMPIRun || Self.launchedAs != nil || externalZMQ != nil }
    /// A launched worker's run directory (its launcher keeps every rank's log there).
    var runDirectory: String? { Self.launchedAs?.runDirectory }
    /// FLEET_TEST_PERTURB_REDUCTION (tests): sum in another order, to prove `fleet diff` catches it.
    var perturbedReduction: Bool
    /// FLEET_TEST_KILL_DURING_CHECKPOINT=N (tests): die halfway through writing checkpoint N.
    var killDuringCheckpoint: Int?

    /// The trainer's test hooks, from the variables above.
    var executionContext: ExecutionContext {
        ExecutionContext(reductionOrder: perturbedReduction ? .leftFoldForTesting : .tree, killDuringCheckpoint: killDuringCheckpoint)
    }

    init(_ environment: [String: String]) {
        attempt = environment[Supervisor.attemptVariable].flatMap(Int.init) ?? 0
        events = EventChannel.fromEnvironment(environment)
        if let rank = environment["FLEET_RANK"].flatMap(Int.init), let size = environment["FLEET_WORLD_SIZE"].flatMap(Int.init),
           let coordinator = environment["FLEET_ZMQ_COORDINATOR"] {
            externalZMQ = ZMQTransport.Configuration(rank: rank, worldSize: size, coordinator: coordinator,
                                                     bind: environment["FLEET_ZMQ_BIND"] ?? "tcp://127.0.0.1:*")
        }
        pinCores = environment["FLEET_PIN_CORES"] == "1"
        sharedMemory = !["off", "0", "no", "false"].contains(environment["FLEET_SHM"]?.lowercased() ?? "")
        sharedMemoryReport = environment["FLEET_SHM_REPORT"] != nil
        perturbedReduction = environment["FLEET_TEST_PERTURB_REDUCTION"] != nil
        killDuringCheckpoint = environment["FLEET_TEST_KILL_DURING_CHECKPOINT"].flatMap { Int($0) }
    }
}
