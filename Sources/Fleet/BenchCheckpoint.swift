import ArgumentParser
import Foundation
import Training
import Workflows
import Workload

struct BenchCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Measure checkpoint writes against a plain sequential write, and the training stall per save (sync and --async-checkpoint).",
        discussion: """
        Both writes go to the same directory and end with fsync, measured alternately in one run.
          fleet bench checkpoint gpt-small
          fleet bench checkpoint gpt-tiny --dir /tmp/ckbench --repetitions 5
        """)

    @Argument(help: "Model whose training state is saved.")
    var model: ModelSpec = ModelCatalog.gptSmall

    @Option(help: "Directory to write into (removed afterwards).")
    var dir: String?

    @Option(help: "Timed saves (and as many plain writes); medians are reported.")
    var repetitions: Int = 5

    @Option(help: "Training steps per stall measurement (a save every 3 steps).")
    var steps: Int = 12

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        try Console.reportingErrors {
            let directory = try dir ?? RunDirectory.create("bench-checkpoint")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var c = TrainingConfiguration(model: model)
            c.steps = steps
            c.evalBatches = 1
            let trainer = try Trainer(configuration: c, corpus: .builtIn())
            _ = trainer.trainStep(0)   // non-zero moments, as in a real save

            var plain: [Double] = [], saves: [Double] = [], bytes = 0
            for repetition in 0..<repetitions {
                let start = ContinuousClock.now
                bytes = try trainer.distributed.saveCheckpointNow(step: repetition + 1, into: directory + "/checkpoints")
                saves.append((ContinuousClock.now - start).seconds)
                plain.append(try Self.plainWrite(bytes: bytes, to: directory + "/plain-\(repetition).bin"))
            }
            let saveRate = Double(bytes) / median(saves), plainRate = Double(bytes) / median(plain)

            let sync = try stall(async: false, directory: directory + "/sync")
            let async = try stall(async: true, directory: directory + "/async")
            if json {
                Console.json([("model", model.name), ("bytes", bytes), ("save_s", median(saves)), ("plain_write_s", median(plain)),
                              ("save_GBps", saveRate / 1e9), ("plain_GBps", plainRate / 1e9), ("save_vs_plain", saveRate / plainRate),
                              ("step_s", async.step), ("sync_stall_s", sync.stall), ("async_stall_s", async.stall),
                              ("sync_stall_fraction", sync.stall / sync.step), ("async_stall_fraction", async.stall / async.step)])
                return
            }
            Console.out("fleet bench checkpoint \(model.name): \(bytes.formatted()) bytes per save (parameters + AdamW moments), medians of \(repetitions)")
            Console.out(String(format: "  checkpoint save    %8.1f ms  %6.2f GB/s   (shard + CRC32C + fsync + rename + manifest)", median(saves) * 1000, saveRate / 1e9))
            Console.out(String(format: "  plain write        %8.1f ms  %6.2f GB/s   (one file, write + fsync, same directory)", median(plain) * 1000, plainRate / 1e9))
            Console.out(String(format: "  save / plain       %8.2f×   (target ≥ 0.8×)", saveRate / plainRate))
            Console.out(String(format: "  training step      %8.1f ms  (median, steps without a save)", async.step * 1000))
            Console.out(String(format: "  stall per save     %8.1f ms  = %5.1f %% of a step, synchronous", sync.stall * 1000, sync.stall / sync.step * 100))
            Console.out(String(format: "  stall per save     %8.1f ms  = %5.1f %% of a step, --async-checkpoint (target ≤ 10 %%)", async.stall * 1000, async.stall / async.step * 100))
        }
    }

    /// Trains with a save every 3 steps; returns the median step without save work and the
    /// stall per save (its snapshot or write, plus publishing it on the following step).
    private func stall(async: Bool, directory: String) throws -> (step: Double, stall: Double) {
        var c = TrainingConfiguration(model: model)
        c.steps = 3 * max(1, steps / 3) + 1   // the last save is published inside the run
        c.evalBatches = 1
        let trainer = try Trainer(configuration: c, corpus: .builtIn())
        trainer.distributed.checkpointing = CheckpointPolicy(directory: directory, every: 3, keep: 2, async: async)
        var plainSteps: [Double] = [], total = 0.0
        trainer.run { m in
            total += m.checkpointSeconds
            if m.checkpointSeconds == 0 && m.step > 0 { plainSteps.append(m.seconds) }
        }
        return (median(plainSteps), total / Double(c.steps / 3))
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// Writes `bytes` to `path` in 8 MiB writes, then fsync: the baseline.
    static func plainWrite(bytes: Int, to path: String) throws -> Double {
        let chunk = [UInt8](repeating: 0x5a, count: 8 << 20)
        let start = ContinuousClock.now
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FleetError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var left = bytes
        while left > 0 {
            let n = chunk.withUnsafeBytes { Foundation.write(fd, $0.baseAddress!, min(left, chunk.count)) }
            guard n > 0 else { close(fd); throw FleetError("cannot write \(path): \(String(cString: strerror(errno)))", duringRun: true) }
            left -= n
        }
        fsync(fd)
        close(fd)
        return (ContinuousClock.now - start).seconds
    }
}
