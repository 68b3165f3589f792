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
            let r = try CheckpointBenchmark(model: model, steps: steps, repetitions: repetitions).run(in: directory)
            let (bytes, saves, plain, sync, async) = (r.bytes, r.save, r.plainWrite, r.sync, r.async)
            let saveRate = Double(bytes) / saves, plainRate = Double(bytes) / plain
            if json {
                Console.json([("model", model.name), ("bytes", bytes), ("save_s", saves), ("plain_write_s", plain),
                              ("save_GBps", saveRate / 1e9), ("plain_GBps", plainRate / 1e9), ("save_vs_plain", saveRate / plainRate),
                              ("step_s", async.step), ("sync_stall_s", sync.stall), ("async_stall_s", async.stall),
                              ("sync_stall_fraction", sync.stall / sync.step), ("async_stall_fraction", async.stall / async.step)])
                return
            }
            Console.out("fleet bench checkpoint \(model.name): \(bytes.formatted()) bytes per save (parameters + AdamW moments), medians of \(repetitions)")
            Console.out(String(format: "  checkpoint save    %8.1f ms  %6.2f GB/s   (shard + CRC32C + fsync + rename + manifest)", saves * 1000, saveRate / 1e9))
            Console.out(String(format: "  plain write        %8.1f ms  %6.2f GB/s   (one file, write + fsync, same directory)", plain * 1000, plainRate / 1e9))
            Console.out(String(format: "  save / plain       %8.2f×   (target ≥ 0.8×)", saveRate / plainRate))
            Console.out(String(format: "  training step      %8.1f ms  (median, steps without a save)", async.step * 1000))
            Console.out(String(format: "  stall per save     %8.1f ms  = %5.1f %% of a step, synchronous", sync.stall * 1000, sync.stall / sync.step * 100))
            Console.out(String(format: "  stall per save     %8.1f ms  = %5.1f %% of a step, --async-checkpoint (target ≤ 10 %%)", async.stall * 1000, async.stall / async.step * 100))
        }
    }
}
