import Collectives
import Foundation
import Training

/// One rank's part of a `fleet train` run, after its trainer is built: resume from a
/// checkpoint, keep the run's records (per-rank step logs, the reporter's record for `fleet
/// diff`, step events for a supervisor), train, and gather and save the final weights.
/// What it has to say goes to `note`, and each step to `report` (on the reporting rank).
public struct TrainingRun {
    public let trainer: DistributedTrainer
    /// Where the run keeps its logs and record (none: no records).
    public var runDirectory: String?
    /// Export the final weights here (`--save`).
    public var save: String?
    /// The event channel a supervisor listens on, and which attempt this is (0: the first).
    public var events: EventChannel?
    public var attempt = 0

    public init(trainer: DistributedTrainer) { self.trainer = trainer }

    /// How the run ended.
    public enum Outcome {
        /// The summary (on the reporting rank).
        case finished(TrainingSummary?)
        /// Stopped by a signal after saving the checkpoint of this step.
        case preempted(afterStep: Int)
    }

    /// Restores `checkpoint`; a run that would have nothing left to train (and is neither a
    /// supervised restart nor a re-save of the checkpoint elsewhere or an export) is refused.
    /// Resumes from `checkpoint` unless it is nil; re-saving it under another checkpoint
    /// directory (`saveDirectory`) counts as work left even at its last step. Returns the
    /// notes the reporter prints: skipped checkpoints, where it resumed (or that nothing was there).
    public func resume(from checkpoint: LoadedCheckpoint?, skipped: [(path: String, reason: Error)], saveDirectory: String?,
                       asked: Bool, searched: String?) throws -> [String] {
        if let checkpoint {
            let source = URL(fileURLWithPath: checkpoint.path).deletingLastPathComponent().standardizedFileURL.path
            try resume(from: checkpoint, savesElsewhere: saveDirectory.map { URL(fileURLWithPath: $0).standardizedFileURL.path != source } ?? false)
        }
        var notes = skipped.map { "skipped checkpoint \($0.path): \($0.reason)" }
        if let m = checkpoint?.manifest {
            notes.append("resumed from \(checkpoint!.path): step \(m.training.step), written by \(m.layout) (\(m.layout.worldSize) ranks)")
        } else if asked {
            notes.append("no checkpoint to resume in \(searched ?? "?"); starting from step 0")
        }
        return notes
    }

    public func resume(from checkpoint: LoadedCheckpoint, savesElsewhere: Bool) throws {
        try trainer.restore(from: checkpoint)
        let steps = trainer.configuration.steps
        if trainer.startStep >= steps && attempt == 0 && !savesElsewhere && save == nil {
            throw FleetError("\(checkpoint.path) is at step \(trainer.startStep) and --steps is \(steps): nothing is left to train; "
                             + "pass a larger --steps to continue it (or --checkpoint-dir DIR to save it again in this layout)")
        }
    }

    public func run(report: @escaping (StepMetrics, DistributedTrainer.StepResult?) -> Void) throws -> Outcome {
        let c = trainer.configuration, transport = trainer.transport, rank = transport.rank
        // Each rank keeps its own steps (timing breakdown and traffic) in the run directory.
        let rankLog = try runDirectory.map { try RankStepLog(path: "\($0)/rank-\(rank).steps.jsonl") }
        // The reporter keeps the run's record for fleet diff: per-step losses and parameter checksums, then the final weights.
        let record = trainer.isReporter ? runDirectory : nil
        if let record {
            try RunRecord.describe(directory: record, fields: [("model", c.model.name), ("layout", trainer.layout.description),
                                                               ("deterministic", c.deterministic), ("transport", transport.backendName),
                                                               ("batch", c.batch), ("sequence", c.sequence), ("seed", Int(c.seed)), ("steps", c.steps)],
                                   tensorNames: trainer.model.layout.entries.map(\.name))
        }
        var firstRecord = true
        let summary = try trainer.run(checksums: runDirectory != nil,
                                      everyRank: { metrics, result in
                                          try rankLog?.write(metrics, result, rank: rank)
                                          if let events {
                                              var step = RunEvent(.step, attempt: attempt, rank: rank)
                                              step.step = metrics.step + 1
                                              step.stepSeconds = result.seconds
                                              events.emit(step)
                                          }
                                      },
                                      report: { metrics, result in
                                          report(metrics, result)
                                          if let record {
                                              try RunRecord.append(metrics, directory: record, first: firstRecord)
                                              firstRecord = false
                                          }
                                      })
        if let step = trainer.preemptedAfter { return .preempted(afterStep: step) }
        if save != nil || runDirectory != nil { try trainer.gatherParameters() }
        if let record { try WeightsFile.save(trainer.model, step: c.steps, to: record + "/final.weights") }
        if let save, summary != nil { try WeightsFile.save(trainer.model, step: c.steps, to: save) }
        if let summary {
            for straggler in summary.stragglers {
                var event = RunEvent(.straggler, attempt: attempt, rank: straggler.rank)
                event.message = "\(straggler)"
                events?.emit(event)
            }
        }
        return .finished(summary)
    }
}
