import Foundation
import Parallelism
import Workload

/// fleet's checkpoint format, version 1. A checkpoint is a directory `step-NNNNNNNN/` with
/// one shard file per writing rank and `manifest.json`, written last: a checkpoint without
/// its manifest is incomplete and never used. Every tensor is stored under its global name
/// with the element range each shard holds, so any layout can read any checkpoint.
///
/// A shard file: the magic `FLEETCK1`, the format version and header length (UInt32,
/// little-endian), a JSON `ShardHeader`, then the slices' Float32 values back to back.
public enum CheckpointFormat {
    public static let magic = Array("FLEETCK1".utf8)
    public static let version = 1
    public static let manifestName = "manifest.json"

    /// `step-00000020`: zero-padded so names sort by step.
    public static func directoryName(step: Int) -> String { "step-" + String(format: "%08d", step) }

    public static func shardName(_ index: Int) -> String { "shard-" + String(format: "%05d", index) + ".bin" }
}

/// What a slice of a shard holds.
public enum CheckpointKind: String, Codable, Sendable, CaseIterable {
    case parameters, firstMoment = "first_moment", secondMoment = "second_moment"
}

/// Elements `start ..< start + count` of tensor `tensor`'s `kind`, stored at `offset` floats into the payload.
public struct CheckpointSlice: Codable, Sendable, Equatable {
    public var tensor: String
    public var kind: CheckpointKind
    public var start: Int
    public var count: Int
    public var offset: Int
}

/// The self-description at the head of each shard file.
public struct ShardHeader: Codable, Sendable {
    public var step: Int
    public var rank: Int
    public var slices: [CheckpointSlice]
}

/// Training state beyond the tensors: enough to continue exactly where the run stopped.
public struct CheckpointTrainingState: Codable, Sendable, Equatable {
    /// Optimizer steps taken: AdamW's bias-correction count and the schedule position.
    public var step: Int
    /// Global samples consumed (the data loader draws sample i of step s from index s·batch + i).
    public var samplesSeen: Int
    /// Seed of the initialisation and of the keyed data and RNG streams (their state is the seed plus the position).
    public var seed: UInt64
    public var batch: Int
    public var sequence: Int
    public var learningRate: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var weightDecay: Float
    public var gradientClip: Float
}

/// One shard as the manifest records it.
public struct ShardRecord: Codable, Sendable {
    public var file: String
    public var rank: Int
    public var bytes: Int
    public var crc32c: UInt32
    public var slices: [CheckpointSlice]
}

/// Each tensor's global name, shape and place in the flat parameter layout.
public struct TensorRecord: Codable, Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// The manifest: written last, it makes a checkpoint visible.
public struct CheckpointManifest: Codable, Sendable {
    public var format = "fleet-checkpoint"
    public var version = CheckpointFormat.version
    public var model: ModelSpec
    /// The layout and mode it was written with (informative: any layout can read it).
    public var layout: ParallelLayout
    public var deterministic: Bool
    public var training: CheckpointTrainingState
    public var tensors: [TensorRecord]
    public var shards: [ShardRecord]
    public var created: String
}

/// Why a checkpoint cannot be written or used, each with what to do.
public enum CheckpointError: Error, CustomStringConvertible {
    case corrupt(shard: String, expectedChecksum: UInt32, found: UInt32)
    case damaged(path: String, reason: String)
    case incomplete(path: String)
    case newerFormat(path: String, version: Int)
    case incompatible(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case noCheckpoint(directory: String)

    public var description: String {
        switch self {
        case let .corrupt(shard, expected, found):
            return "checkpoint shard \(shard) is corrupt: CRC32C expected \(hex(expected)), found \(hex(found)); "
                + "resume from an earlier checkpoint (fleet checkpoint verify DIR lists the valid ones)"
        case let .damaged(path, reason):
            return "\(path) is damaged: \(reason); resume from an earlier checkpoint"
        case let .incomplete(path):
            return "\(path) is incomplete (no \(CheckpointFormat.manifestName): its save was interrupted); it is never used"
        case let .newerFormat(path, version):
            return "\(path) uses checkpoint format version \(version), newer than this fleet reads (\(CheckpointFormat.version)); use a newer fleet"
        case let .incompatible(path, reason):
            return "cannot resume from \(path): \(reason)"
        case let .writeFailed(path, reason):
            return "cannot write checkpoint file \(path): \(reason); free space or pass another --checkpoint-dir (earlier checkpoints stay valid)"
        case let .noCheckpoint(directory):
            return "\(directory) holds no complete, valid checkpoint"
        }
    }

    private func hex(_ value: UInt32) -> String { String(format: "%08x", value) }
}
