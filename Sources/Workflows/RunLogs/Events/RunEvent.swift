import Collectives
import Foundation
import Training

/// One thing a fleet process tells whoever supervises it, as one JSON line on the run's event
/// channel: a rank finished a step or failed, the reporter named a straggler, the supervisor
/// saw an attempt fail or the run finish. Decisions about other processes read these (never
/// their terminal text).
public struct RunEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case step, failure, straggler
        case attemptFailed = "attempt_failed"
        case finished
    }

    public var event: Kind
    /// Seconds since 1970 (ranks and supervisor share the machine's clock).
    public var time: Double
    /// 0 for the first attempt, k after the k-th restart.
    public var attempt: Int
    public var rank: Int?
    /// `step`: the step just finished (1-based); `attempt_failed`: the newest step any rank finished.
    public var step: Int?
    public var stepSeconds: Double?
    public var cause: FailureCause?
    public var message: String?
    /// `attempt_failed`: the step of the checkpoint the next attempt resumes from (0: none).
    public var resumeStep: Int?
    /// `attempt_failed`: how long the attempt ran, and from its last finished step to the failure being seen.
    public var ranSeconds: Double?
    public var sinceLastStepSeconds: Double?
    /// `finished`.
    public var recovered: Bool?
    public var restarts: Int?
    public var recomputedSteps: Int?
    public var wallSeconds: Double?

    public init(_ event: Kind, attempt: Int, rank: Int? = nil, time: Double = Date().timeIntervalSince1970) {
        self.event = event
        self.attempt = attempt
        self.rank = rank
        self.time = time
    }

    /// A rank's failure, its cause classified from the typed error that stopped it.
    public static func failure(_ error: Error, attempt: Int, rank: Int) -> RunEvent {
        var event = RunEvent(.failure, attempt: attempt, rank: rank)
        event.cause = FailureCause(error)
        event.message = "\(error)"
        return event
    }

    private enum CodingKeys: String, CodingKey {
        case event, time, attempt, rank, step, cause, message, recovered, restarts
        case stepSeconds = "step_s", resumeStep = "resume_step", ranSeconds = "ran_s", sinceLastStepSeconds = "since_last_step_s"
        case recomputedSteps = "recomputed_steps", wallSeconds = "wall_s"
    }
}

/// Why a rank or an attempt failed, from the typed error that stopped it.
public enum FailureCause: String, Codable, Sendable, CaseIterable {
    case processDied = "process_died"
    case processExited = "process_exited"
    case deadline
    case peerDied = "peer_died"
    case messageChecksum = "message_checksum"
    case messageOrder = "message_order"
    case nonFiniteGradient = "non_finite_gradient"
    case replicaDivergence = "replica_divergence"
    case checkpointWrite = "checkpoint_write"
    case checkpointDamaged = "checkpoint_damaged"
    case recordWrite = "record_write"
    case commandFailed = "command_failed"
    case other

    public init(_ error: Error) {
        switch error {
        case let error as TransportError:
            switch error {
            case .peerTimedOut: self = .deadline
            case .peerDied: self = .peerDied
            case .corruptMessage: self = .messageChecksum
            case .messageOutOfOrder: self = .messageOrder
            default: self = .other
            }
        case let error as TrainingFault:
            switch error {
            case .nonFinite: self = .nonFiniteGradient
            case .replicasDiverged: self = .replicaDivergence
            }
        case let error as CheckpointError:
            if case .writeFailed = error { self = .checkpointWrite } else { self = .checkpointDamaged }
        case is FileOutput.Failure:
            self = .recordWrite
        case let LocalLauncher.LaunchError.workerFailed(first, _):
            self = first.signaled ? .processDied : .processExited
        default:
            self = .other
        }
    }

    /// A failure between ranks, which the last messages each rank exchanged help explain.
    public var isCommunication: Bool { [.deadline, .peerDied, .messageChecksum, .messageOrder].contains(self) }

    /// A few words for tables.
    public var title: String {
        switch self {
        case .processDied: return "process died"
        case .processExited: return "process exited"
        case .deadline: return "deadline (silent rank)"
        case .peerDied: return "peer connection closed"
        case .messageChecksum: return "message checksum"
        case .messageOrder: return "message sequence number"
        case .nonFiniteGradient: return "non-finite gradient"
        case .replicaDivergence: return "replica divergence"
        case .checkpointWrite: return "checkpoint write failed"
        case .checkpointDamaged: return "checkpoint damaged"
        case .recordWrite: return "run record write failed"
        case .commandFailed: return "command failed"
        case .other: return "failure"
        }
    }
}
