import ArgumentParser
import Collectives
import Engine
import FaultInjection
import Foundation
import Lab
import Parallelism
import Training
import Workflows

/// fleet's exit statuses: one meaning each, so a script can tell a verdict from a mistake and
/// a mistake from a failure (docs/cli.md lists them).
enum ExitStatus {
    static let success: Int32 = 0
    /// A negative verdict: runs differ, a checkpoint is corrupt or incomplete, a check or a
    /// campaign found a failure.
    static let verdict: Int32 = 1
    /// A usage or input error: a flag, a file, a scenario, a layout or a checkpoint that cannot
    /// be used. Nothing ran (or nothing could).
    static let input: Int32 = 2
    /// The run failed while running: a rank died, hung or was corrupted, a write failed, a
    /// supervisor gave up.
    static let failure: Int32 = 3
    /// Stopped by a signal after saving a checkpoint (EX_TEMPFAIL): the same command with --resume continues.
    static let preempted: Int32 = 75

    /// The status an error that stopped a command stands for.
    static func of(_ error: Error) -> Int32 {
        switch error {
        case let error as FleetError: return error.duringRun ? failure : input
        case let error as LabError: return error.duringRun ? failure : input
        case is ValidationError, is ScenarioError, is ParallelLayout.Invalid, is TrainingConfiguration.Invalid, is FaultPlan.Invalid,
             is Corpus.LoadError, is DeterministicMode.Unsupported, is PipelineSchedule.Problem:
            return input
        case let error as WeightsFile.Failure:
            // Paths were checked before the run: a write that fails now failed while running (a full disk).
            if case .cannotWrite = error { return failure }
            return input
        case let error as CheckpointError:
            if case .writeFailed = error { return failure }
            return input
        case let LocalLauncher.LaunchError.workerFailed(first, all):
            // Workers that all refused their input (they check it before any work) make an input error.
            let failed = all.isEmpty ? [first] : all.filter { !$0.succeeded }
            return failed.allSatisfy { !$0.signaled && $0.status == input } ? input : failure
        case LocalLauncher.LaunchError.cannotStart:
            return failure
        default:
            // Reading a file that is not there (or not readable) is input; every other failure happened while running.
            let ns = error as NSError
            if ns.domain == NSCocoaErrorDomain, [CocoaError.fileNoSuchFile, .fileReadNoSuchFile, .fileReadNoPermission, .fileReadCorruptFile,
                                                 .fileReadInvalidFileName, .fileReadUnknown].map(\.rawValue).contains(ns.code) {
                return input
            }
            return failure
        }
    }
}
