import ArgumentParser
import Foundation
import Training

/// `fleet train`'s checkpoint flags.
struct CheckpointOptions: ParsableArguments {
    @Option(help: "Save checkpoints under this directory (step-NNNNNNNN/ each; the final state is always saved).")
    var checkpointDir: String?

    @Option(help: "Save a checkpoint every N steps (0: only at the end).")
    var checkpointEvery: Int = 0

    @Option(help: "Keep the newest K complete checkpoints.")
    var keep: Int = 3

    @Flag(help: "Snapshot in memory and write checkpoints in the background while training continues.")
    var asyncCheckpoint = false

    @Flag(help: "Continue from the newest valid checkpoint in --checkpoint-dir (a damaged newer one is reported and skipped).")
    var resume = false

    @Option(help: "Continue from this checkpoint (a step-N directory, or a directory of them), whatever layout wrote it.")
    var resumeFrom: String?

    @Option(help: "Stop after this step (saving a checkpoint when --checkpoint-dir is set), as if interrupted; --steps stays the total.")
    var stopAt: Int?

    func validate() throws {
        if let stopAt, stopAt < 1 { throw ValidationError("--stop-at must be at least 1") }
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must not be negative") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
        if checkpointDir == nil && (checkpointEvery > 0 || asyncCheckpoint || resume) {
            throw ValidationError("--checkpoint-every, --async-checkpoint and --resume need --checkpoint-dir DIR")
        }
    }

    var isActive: Bool { checkpointDir != nil || resumeFrom != nil || stopAt != nil }

    /// The save policy.
    var policy: CheckpointPolicy? {
        checkpointDir.map { CheckpointPolicy(directory: $0, every: checkpointEvery, keep: keep, async: asyncCheckpoint) }
    }

    /// The checkpoint to continue from, if any, and the newer ones skipped on the way (with why).
    func checkpointToResume() throws -> (checkpoint: LoadedCheckpoint?, skipped: [(path: String, reason: Error)]) {
        if let resumeFrom { return try CheckpointStore.resolve(resumeFrom) }
        guard resume, let checkpointDir else { return (nil, []) }
        return CheckpointStore(directory: checkpointDir).newestValid()
    }
}
