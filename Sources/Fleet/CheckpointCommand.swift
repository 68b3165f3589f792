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
                let report = CheckpointReport(try CheckpointStore.resolve(directory).0)
                if json { Console.out(report.json) } else { report.lines.forEach(Console.out) }
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
            let results = CheckpointReport.verify(directory)
            guard !results.isEmpty else {
                Console.err("fleet: error: \(directory) holds no checkpoints (step-N directories)")
                throw ExitCode(1)
            }
            for (path, verdict) in results {
                switch verdict {
                case let .ok(step, shards): Console.out("ok       \(path): step \(step), \(shards) shard(s), every checksum and element present")
                case .partial: Console.out("partial  \(path): incomplete (its save was interrupted); ignored by --resume")
                case let .corrupt(reason): Console.out("CORRUPT  \(path): \(reason)")
                }
            }
            if results.contains(where: { if case .corrupt = $0.verdict { return true } else { return false } }) { throw ExitCode(1) }
        }
    }
}
