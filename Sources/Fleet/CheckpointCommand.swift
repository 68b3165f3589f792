import ArgumentParser
import Collectives
import Foundation
import Training
import Workflows

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Look into and verify checkpoints written by fleet train --checkpoint-dir.",
        subcommands: [Inspect.self, Verify.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a checkpoint: step, the layout that wrote it, training state, tensors and shards.",
            discussion: "DIR is a step-N directory, or a directory of them (its newest complete checkpoint is shown).")

        @Argument(help: "A checkpoint, or a checkpoint directory.")
        var directory: String

        @Flag(help: "One JSON object, with a CRC32C of every tensor's parameters and moments (equal across layouts when the bits are).")
        var json = false

        func run() throws {
            try Console.reportingErrors {
                let (checkpoint, _) = try CheckpointStore.resolve(directory)
                let m = checkpoint.manifest
                func checksums(_ kind: CheckpointKind) -> [UInt32] {
                    var offset = 0
                    return m.tensors.map { t in
                        defer { offset += t.count }
                        return CRC32C.checksum(UnsafeRawBufferPointer(start: checkpoint.buffer(kind).pointer + offset, count: t.count * 4))
                    }
                }
                let sums = checksums(.parameters), first = checksums(.firstMoment), second = checksums(.secondMoment)
                if json {
                    let hex = { (value: UInt32) in String(format: "%08x", value) }
                    let tensors = m.tensors.indices.map { i in
                        let t = m.tensors[i]
                        return "{\"name\":\"\(t.name)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"crc32c\":\"\(hex(sums[i]))\","
                            + "\"first_moment_crc32c\":\"\(hex(first[i]))\",\"second_moment_crc32c\":\"\(hex(second[i]))\"}"
                    }
                    var line = Console.jsonLine([("path", checkpoint.path), ("step", m.training.step), ("model", m.model.name),
                                                 ("layout", m.layout.description), ("ranks", m.layout.worldSize), ("deterministic", m.deterministic),
                                                 ("version", m.version), ("shards", m.shards.count),
                                                 ("bytes", m.shards.reduce(0) { $0 + $1.bytes })])
                    line.removeLast()
                    Console.out(line + ",\"tensors\":[" + tensors.joined(separator: ",") + "]}")
                    return
                }
                Console.out("\(checkpoint.path): format version \(m.version), written \(m.created)")
                Console.out("  step \(m.training.step) of \(m.training.totalSteps), \(m.training.samplesSeen.formatted()) samples seen, seed \(m.training.seed), "
                    + "batch \(m.training.batch) × \(m.training.sequence), lr \(m.training.learningRate), warm-up \(m.training.warmupSteps)")
                Console.out("  model \(m.model.name) (\(m.model.parameterCount.formatted()) parameters), written by \(m.layout) on \(m.layout.worldSize) rank(s)"
                    + (m.deterministic ? ", deterministic mode" : ""))
                Console.out("  tensors (parameters + AdamW moments, Float32):")
                let table = Table(columns: [("shape", 12), ("bytes", 12), ("crc32c", 10)])
                Console.out("    " + "name".padding(toLength: 18, withPad: " ", startingAt: 0) + table.header())
                for (t, crc) in zip(m.tensors, sums) {
                    Console.out("    " + t.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                        + table.row([t.shape.map(String.init).joined(separator: "×"), (3 * t.count * 4).formatted(), String(format: "%08x", crc)]))
                }
                Console.out("  shards:")
                for shard in m.shards {
                    Console.out("    \(shard.file)  rank \(shard.rank)  \(shard.bytes.formatted()) bytes  crc32c \(String(format: "%08x", shard.crc32c))  \(shard.slices.count) slices")
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every shard's size and CRC32C; exit status 1 when a checkpoint is corrupt, or incomplete when named on its own (in a directory, interrupted saves are listed as partial: --resume skips them).",
            discussion: "DIR is a step-N directory, or a directory of them (each is checked).")

        @Argument(help: "A checkpoint, or a checkpoint directory.")
        var directory: String

        func run() throws {
            let single = FileManager.default.fileExists(atPath: directory + "/" + CheckpointFormat.manifestName)
                || (directory as NSString).lastPathComponent.hasPrefix("step-")
            let paths = single ? [directory] : CheckpointStore(directory: directory).candidates().map(\.path)
            guard !paths.isEmpty else {
                Console.err("fleet: error: \(directory) holds no checkpoints (step-N directories)")
                throw ExitCode(1)
            }
            var failures = 0
            for path in paths {
                do {
                    let m = try CheckpointStore.load(path).manifest
                    Console.out("ok       \(path): step \(m.training.step), \(m.shards.count) shard(s), every checksum and element present")
                } catch CheckpointError.incomplete(let path) where !single {
                    // An interrupted save is not damage: it is never used, and older checkpoints stay valid.
                    Console.out("partial  \(path): incomplete (its save was interrupted); ignored by --resume")
                } catch {
                    failures += 1
                    Console.out("CORRUPT  \(path): \(error)")
                }
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }
}
