import Foundation
import Collectives
import Parallelism
import Tensor
import Workload

/// When and where a run saves checkpoints.
public struct CheckpointPolicy: Sendable {
    public var directory: String
    /// Save every this many steps (0: only at the end of the run).
    public var every: Int
    /// Keep the newest this many complete checkpoints.
    public var keep: Int
    /// Snapshot in memory and persist in the background while training continues.
    public var async: Bool
    /// Tests only: rank 0 dies halfway through writing its shard of this step's checkpoint.

    public init(directory: String, every: Int, keep: Int = 3, async: Bool = false) {
        self.directory = directory
        self.every = every
        self.keep = keep
        self.async = async
    }
}

/// A save whose shard is being written in the background.
final class PendingCheckpoint: @unchecked Sendable {   // its result is written once, before `done` is signalled, and read after
    let step: Int
    let path: String
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<ShardRecord?, Error> = .success(nil)

    init(step: Int, path: String) {
        self.step = step
        self.path = path
    }

    func finish(_ outcome: Result<ShardRecord?, Error>) {
        result = outcome
        done.signal()
    }

    /// Blocks until the shard is on disk; returns its record (nil when this rank wrote nothing).
    func wait() throws -> ShardRecord? {
        done.wait()
        return try result.get()
    }
}

extension DistributedTrainer {
    /// Of `counted` (the counted ranges of this rank, or of one at data-parallel index `dp`), what it holds as the first replica's copy: all
    /// of them at data-parallel index 0, its routed experts at the other indices of the first
    /// expert-parallel group (which hold the experts index 0 does not), nothing elsewhere.
    func firstReplicaRanges(_ counted: [Range<Int>], dp: Int? = nil) -> [Range<Int>] {
        let dp = dp ?? coordinates.dp
        if dp == 0 { return counted }
        guard dp < layout.ep else { return [] }
        return counted.filter(isRoutedExpert)
    }

    /// What this rank saves: each element of every tensor is saved by exactly one rank (the
    /// first data-parallel replica for parameters — under expert parallelism the first
    /// expert-parallel group, each member its own routed experts; for ZeRO moments, and ZeRO-3
    /// parameters, the dp rank that owns them).
    func checkpointSlices() -> [(slice: CheckpointSlice, source: UnsafePointer<Float>)] {
        var pieces: [(CheckpointKind, Range<Int>, UnsafePointer<Float>)] = []
        let counted = ranges(stage: stage, shard: coordinates.tp, counted: true)
        for range in firstReplicaRanges(counted) {
            // Under ZeRO-3 each block's owner saves its parameters (below): no rank holds them all.
            if zero < 3 { pieces.append((.parameters, range, UnsafePointer(model.parameters.pointer + range.lowerBound))) }
            if shardedState == nil {
                pieces.append((.firstMoment, range, UnsafePointer(firstMoment.pointer + range.lowerBound)))
                pieces.append((.secondMoment, range, UnsafePointer(secondMoment.pointer + range.lowerBound)))
            }
        }
        if let state = shardedState {
            Self.intersect(state.blocks.map(\.range), counted) { part, index in
                let (block, moment) = state.blocks[index], at = moment + part.lowerBound - block.lowerBound
                if zero >= 3 { pieces.append((.parameters, part, UnsafePointer(model.parameters.pointer + part.lowerBound))) }
                pieces.append((.firstMoment, part, UnsafePointer(state.firstMoment.pointer + at)))
                pieces.append((.secondMoment, part, UnsafePointer(state.secondMoment.pointer + at)))
            }
        }
        // Flat ranges become per-tensor slices, stored back to back.
        var result: [(slice: CheckpointSlice, source: UnsafePointer<Float>)] = [], offset = 0
        for (kind, range, source) in pieces {
            for (entry, part) in model.layout.split(range) {
                let slice = CheckpointSlice(tensor: entry.name, kind: kind, start: part.lowerBound - entry.offset, count: part.count, offset: offset)
                result.append((slice, source + (part.lowerBound - range.lowerBound)))
                offset += part.count
            }
        }
        return result
    }

    /// Saves the state after `step` optimizer steps under `policy.directory`. Synchronous
    /// saves are complete on return; asynchronous ones copy this rank's slices now and write
    /// them in the background, and `finishCheckpoint()` publishes them.
    func saveCheckpoint(step: Int, policy: CheckpointPolicy) throws {
        try finishCheckpoint()
        let path = policy.directory + "/" + CheckpointFormat.directoryName(step: step)
        try CheckpointIO.makeDirectory(path)
        let slices = checkpointSlices()
        let header = ShardHeader(step: step, rank: transport.rank, slices: slices.map(\.slice))
        let fault = injector?.checkpointFault(step: step)
        if let fault, !fault.gentle {
            throw CheckpointError.writeFailed(path: path + "/" + CheckpointFormat.shardName(transport.rank),
                                              reason: "no space left on device (injected: \(fault))")
        }
        // A constant: the asynchronous save's thread reads it.
        let stopHalfway = (context.killDuringCheckpoint == step && transport.rank == 0) || fault?.gentle == true
        let pending = PendingCheckpoint(step: step, path: path)
        let file = path + "/" + CheckpointFormat.shardName(transport.rank)
        if policy.async {
            // The snapshot: later updates to the weights cannot reach what this save writes.
            let count = slices.reduce(0) { $0 + $1.slice.count }
            // (The previous save has finished writing: finishCheckpoint() above waited for it.)
            let snapshot = snapshotBuffer(floats: count)
            for (slice, source) in slices { (snapshot.pointer + slice.offset).update(from: source, count: slice.count) }
            let handoff = Handoff(snapshot)
            let thread = Thread {
                pending.finish(Result {
                    guard !header.slices.isEmpty else { return nil }
                    return try Self.writeShard(header: header, payload: UnsafeRawBufferPointer(start: handoff.buffer.pointer, count: count * 4),
                                               to: file, stopHalfway: stopHalfway)
                })
            }
            thread.start()
        } else {
            pending.finish(Result {
                guard !header.slices.isEmpty else { return nil }
                // Slices are contiguous per source range; write each straight from the model's buffers.
                let pieces = slices.map { UnsafeRawBufferPointer(start: $0.source, count: $0.slice.count * 4) }
                return try Self.writeShard(header: header, pieces: pieces, to: file, stopHalfway: stopHalfway)
            })
        }
        pendingCheckpoint = (pending, policy)
        if !policy.async { try finishCheckpoint() }
    }

    /// The reusable in-memory copy that asynchronous saves write from.
    func snapshotBuffer(floats: Int) -> FloatBuffer {
        if let buffer = snapshot, buffer.count >= floats { return buffer }
        let buffer = FloatBuffer(count: floats)
        snapshot = buffer
        return buffer
    }

    /// Saves the current state (as step `step`) under `directory` and returns once it is
    /// published; returns the bytes written by this rank.
    @discardableResult
    public func saveCheckpointNow(step: Int, into directory: String) throws -> Int {
        try saveCheckpoint(step: step, policy: CheckpointPolicy(directory: directory, every: 0, keep: Int.max))
        let path = directory + "/" + CheckpointFormat.directoryName(step: step)
        return (try? FileManager.default.attributesOfItem(atPath: path + "/" + CheckpointFormat.shardName(transport.rank))[.size] as? Int) ?? 0
    }

    static func writeShard(header: ShardHeader, payload: UnsafeRawBufferPointer, to file: String, stopHalfway: Bool) throws -> ShardRecord {
        try writeShard(header: header, pieces: [payload], to: file, stopHalfway: stopHalfway)
    }

    static func writeShard(header: ShardHeader, pieces: [UnsafeRawBufferPointer], to file: String, stopHalfway: Bool) throws -> ShardRecord {
        let json = try JSONEncoder().encode(header)
        var prefix = CheckpointFormat.magic
        for value in [UInt32(CheckpointFormat.version), UInt32(json.count)] { withUnsafeBytes(of: value.littleEndian) { prefix += $0 } }
        prefix += json
        let (bytes, crc) = try prefix.withUnsafeBytes { try CheckpointIO.write([$0] + pieces, to: file, stopHalfway: stopHalfway) }
        return ShardRecord(file: PathName.last(of: file), rank: header.rank, bytes: bytes, crc32c: crc, slices: header.slices)
    }

    /// Waits for the pending save's shard, gathers every rank's shard record on rank 0, which
    /// writes the manifest (making the checkpoint visible) and prunes old checkpoints.
    func finishCheckpoint() throws {
        guard let (pending, policy) = pendingCheckpoint else { return }
        pendingCheckpoint = nil
        let mine = try pending.wait()
        lastCheckpoint = (policy.directory, pending.step)
        let encoded = Array(try JSONEncoder().encode(mine.map { [$0] } ?? []))
        guard let records = try groups.world.gather(bytes: encoded, root: 0) else { return }
        let shards = try records.flatMap { try JSONDecoder().decode([ShardRecord].self, from: Data($0)) }
        let c = configuration
        let manifest = CheckpointManifest(
            model: c.model, layout: layout, deterministic: c.deterministic,
            training: CheckpointTrainingState(step: pending.step, samplesSeen: pending.step * c.batch, seed: c.seed, batch: c.batch,
                                              sequence: c.sequence, learningRate: c.learningRate, warmupSteps: c.warmupSteps,
                                              totalSteps: c.steps, weightDecay: c.weightDecay, gradientClip: c.gradientClip),
            tensors: model.layout.entries.map { TensorRecord(name: $0.name, shape: $0.shape) },
            shards: shards, created: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        _ = try CheckpointIO.write(Array(try encoder.encode(manifest)), to: pending.path + "/" + CheckpointFormat.manifestName)
        CheckpointStore(directory: policy.directory).prune(keep: policy.keep)
    }

    /// Continues from `checkpoint`, whatever layout wrote it: parameters, AdamW moments (and
    /// its step count), schedule and data positions. The run then starts at its step.
    public func restore(from checkpoint: LoadedCheckpoint) throws {
        let saved = checkpoint.manifest, c = configuration
        func incompatible(_ reason: String) -> CheckpointError { .incompatible(path: checkpoint.path, reason: reason) }
        guard saved.model == c.model else {
            throw incompatible("it holds \(saved.model.name) (\(saved.model.parameterCount.formatted()) parameters), this run trains \(c.model.name); train the same model or use another checkpoint directory")
        }
        guard saved.tensors == model.layout.entries.map({ TensorRecord(name: $0.name, shape: $0.shape) }) else {
            throw incompatible("its tensors do not match \(c.model.name)'s parameter layout")
        }
        guard saved.training.seed == c.seed else { throw incompatible("it was trained with --seed \(saved.training.seed); resume with the same seed") }
        guard saved.training.batch == c.batch, saved.training.sequence == c.sequence else {
            throw incompatible("it was trained with --batch \(saved.training.batch) --seq \(saved.training.sequence); resume with the same batch shape")
        }
        guard saved.training.step <= c.steps else {
            throw incompatible("it is at step \(saved.training.step), past --steps \(c.steps) (--steps is the total step count)")
        }
        // Only what this rank holds is copied in (the rest would fill pages it gives back).
        for range in heldParameterRanges {
            (model.parameters.pointer + range.lowerBound).update(from: checkpoint.parameters.pointer + range.lowerBound, count: range.count)
        }
        if let state = shardedState {
            for (block, moment) in state.blocks {
                (state.firstMoment.pointer + moment).update(from: checkpoint.firstMoment.pointer + block.lowerBound, count: block.count)
                (state.secondMoment.pointer + moment).update(from: checkpoint.secondMoment.pointer + block.lowerBound, count: block.count)
            }
        } else {
            for range in ownedRanges {
                (firstMoment.pointer + range.lowerBound).update(from: checkpoint.firstMoment.pointer + range.lowerBound, count: range.count)
                (secondMoment.pointer + range.lowerBound).update(from: checkpoint.secondMoment.pointer + range.lowerBound, count: range.count)
            }
        }
        optimizer.restore(step: saved.training.step)
        startStep = saved.training.step
        lastCheckpoint = (PathName.directory(of: checkpoint.path), saved.training.step)
    }
}

/// The snapshot an asynchronous save writes, handed to its thread. Unchecked because the
/// training thread does not touch the buffer again until `finishCheckpoint()` has waited for the write.
private struct Handoff: @unchecked Sendable {
    let buffer: FloatBuffer
    init(_ buffer: FloatBuffer) { self.buffer = buffer }
}
