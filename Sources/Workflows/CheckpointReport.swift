import Collectives
import Foundation
import Training
import Workload

/// What `fleet checkpoint inspect` and `verify` show of checkpoints, as values and lines.
public struct CheckpointReport {
    public let checkpoint: LoadedCheckpoint
    /// CRC32C of every tensor's parameters, first and second moments (equal across layouts when the bits are).
    public let parameterSums: [UInt32], firstMomentSums: [UInt32], secondMomentSums: [UInt32]

    public init(_ checkpoint: LoadedCheckpoint) {
        self.checkpoint = checkpoint
        func checksums(_ kind: CheckpointKind) -> [UInt32] {
            var offset = 0
            return checkpoint.manifest.tensors.map { t in
                defer { offset += t.count }
                return CRC32C.checksum(UnsafeRawBufferPointer(start: checkpoint.buffer(kind).pointer + offset, count: t.count * 4))
            }
        }
        parameterSums = checksums(.parameters)
        firstMomentSums = checksums(.firstMoment)
        secondMomentSums = checksums(.secondMoment)
    }

    /// One JSON object: the manifest's facts and every tensor's checksums.
    public var json: String {
        let m = checkpoint.manifest
        let hex = { (value: UInt32) in String(format: "%08x", value) }
        let tensors = m.tensors.indices.map { i in
            let t = m.tensors[i]
            return "{\"name\":\"\(t.name)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"crc32c\":\"\(hex(parameterSums[i]))\","
                + "\"first_moment_crc32c\":\"\(hex(firstMomentSums[i]))\",\"second_moment_crc32c\":\"\(hex(secondMomentSums[i]))\"}"
        }
        var line = JSONLine.encode([("path", checkpoint.path), ("step", m.training.step), ("model", m.model.name),
                                    ("layout", m.layout.description), ("ranks", m.layout.worldSize), ("deterministic", m.deterministic),
                                    ("version", m.version), ("shards", m.shards.count), ("bytes", m.shards.reduce(0) { $0 + $1.bytes })])
        line.removeLast()
        return line + ",\"tensors\":[" + tensors.joined(separator: ",") + "]}"
    }

    /// The text `inspect` prints: training state, model and layout, tensors, shards.
    public var lines: [String] {
        let m = checkpoint.manifest
        var lines = ["\(checkpoint.path): format version \(m.version), written \(m.created)"]
        lines.append("  step \(m.training.step) of \(m.training.totalSteps), \(m.training.samplesSeen.formatted()) samples seen, seed \(m.training.seed), "
            + "batch \(m.training.batch) × \(m.training.sequence), lr \(m.training.learningRate), warm-up \(m.training.warmupSteps)")
        lines.append("  model \(m.model.name) (\(m.model.parameterCount.formatted()) parameters), written by \(m.layout) on \(m.layout.worldSize) rank(s)"
            + (m.deterministic ? ", deterministic mode" : ""))
        lines.append("  tensors (parameters + AdamW moments, Float32):")
        let table = Table(columns: [("shape", 12), ("bytes", 12), ("crc32c", 10)])
        let name = { (text: String) in "    " + text.padding(toLength: 18, withPad: " ", startingAt: 0) }
        lines.append(name("name") + table.header())
        for (t, crc) in zip(m.tensors, parameterSums) {
            lines.append(name(t.name) + table.row([t.shape.map(String.init).joined(separator: "×"), (3 * t.count * 4).formatted(), String(format: "%08x", crc)]))
        }
        lines.append("  shards:")
        for shard in m.shards {
            lines.append("    \(shard.file)  rank \(shard.rank)  \(shard.bytes.formatted()) bytes  crc32c \(String(format: "%08x", shard.crc32c))  \(shard.slices.count) slices")
        }
        return lines
    }

    /// A checkpoint's verdict from `verify`.
    public enum Verdict: Sendable {
        case ok(step: Int, shards: Int)
        /// An interrupted save found in a directory: never used by --resume, and not damage.
        case partial
        case corrupt(String)
    }

    /// Checks every shard's size and CRC32C of `directory`: one checkpoint (a step-N directory
    /// or one with a manifest; incomplete is corrupt there) or each checkpoint in a directory.
    public static func verify(_ directory: String) -> [(path: String, verdict: Verdict)] {
        let single = FileManager.default.fileExists(atPath: directory + "/" + CheckpointFormat.manifestName)
            || PathName.last(of: directory).hasPrefix("step-")
        let paths = single ? [directory] : CheckpointStore(directory: directory).candidates().map(\.path)
        return paths.map { path in
            do {
                let m = try CheckpointStore.load(path).manifest
                return (path, .ok(step: m.training.step, shards: m.shards.count))
            } catch CheckpointError.incomplete where !single {
                return (path, .partial)
            } catch {
                return (path, .corrupt("\(error)"))
            }
        }
    }
}
