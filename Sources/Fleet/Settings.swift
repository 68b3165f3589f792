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
    /// FLEET_RUN_DIR: a self-launched worker's run directory (set by its launcher).
    var runDirectory: String?
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
        runDirectory = environment["FLEET_RUN_DIR"]
        perturbedReduction = environment["FLEET_TEST_PERTURB_REDUCTION"] != nil
        killDuringCheckpoint = environment["FLEET_TEST_KILL_DURING_CHECKPOINT"].flatMap { Int($0) }
    }
}
