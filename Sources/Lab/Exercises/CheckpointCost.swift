import Foundation
import Workflows
import Workload

/// A checkpoint's size and the stall it costs, synchronous and asynchronous, measured.
struct CheckpointCost: Exercise {
    let id = "checkpoint-cost"
    let chapter = "Checkpointing"
    let title = "What a checkpoint weighs and what saving it costs: synchronous vs asynchronous"
    let minutes = 20
    let needs = "one process"
    let background = """
        A training checkpoint holds what resuming needs: the fp32 weights and Adam's two fp32 moments (12 bytes
        per parameter here), plus the step, the data position and a manifest with a CRC32C per shard. A
        synchronous save stops training for the whole write (size ÷ write bandwidth, plus fsync); an
        asynchronous one copies the state to memory (size ÷ memory bandwidth) and writes it while the next
        steps run. The run trains gpt-tiny and saves every 4 steps, first synchronously, then asynchronously,
        and measures the extra time of the steps that saved.
        """
    let questions = [
        Question("checkpoint-bytes", "Bytes of one gpt-tiny checkpoint (weights + Adam moments, without headers)", unit: "bytes", tolerance: 0.01,
                 hint: "842,496 parameters × (4 + 4 + 4) bytes."),
        Question("async-over-sync-stall", "Measured stall per save, asynchronous ÷ synchronous", unit: "ratio", tolerance: 0, absolute: 0.35,
                 measured: true, hint: "The asynchronous save stalls for a memory copy only; the write overlaps the next steps."),
    ]
    let stretch = "At what checkpoint interval does a synchronous save cost 1 % of training time here — and what interval does Young–Daly suggest for a cluster MTBF of 3 hours?"

    func arguments(_ directory: String, async: Bool) -> [String] {
        ["gpt-tiny", "--batch", "8", "--steps", "24", "--log-every", "1000", "--checkpoint-dir", directory, "--checkpoint-every", "4", "--keep", "2"]
            + (async ? ["--async-checkpoint"] : [])
    }

    func commands(quick: Bool) -> [String] {
        ["fleet train " + arguments("runs/ck-sync", async: false).joined(separator: " ") + " --json",
         "fleet train " + arguments("runs/ck-async", async: true).joined(separator: " ") + " --json",
         "fleet bench checkpoint gpt-small   # the same question at 130 MB"]
    }

    func solve() throws -> [String: Double] { ["checkpoint-bytes": Double(ModelCatalog.gptTiny.parameterCount * 12)] }

    /// Median step time of the steps that saved minus that of those that did not.
    func stall(_ steps: [[String: Any]]) -> Double {
        let timed = steps.dropFirst(2).map { (Int(FleetChild.number($0, "step")), FleetChild.number($0, "step_s")) }
        let saving = timed.filter { $0.0 % 4 == 0 || $0.0 % 4 == 1 }.map(\.1), plain = timed.filter { $0.0 % 4 == 2 || $0.0 % 4 == 3 }.map(\.1)
        return max(0, (saving.reduce(0, +) / Double(max(saving.count, 1)) - plain.reduce(0, +) / Double(max(plain.count, 1))) * 2)
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var stalls: [Double] = [], sizes: [Double] = []
        for async in [false, true] {
            settings.progress("training gpt-tiny with \(async ? "asynchronous" : "synchronous") checkpoints…")
            let directory = settings.directory + (async ? "/ck-async" : "/ck-sync")
            let run = try FleetChild.train(arguments(directory, async: async), in: settings.directory, name: async ? "async" : "sync")
            stalls.append(stall(run.steps))
            sizes.append(Double(RunDirectory.size(of: directory + "/step-00000024")))
        }
        var outcome = LabOutcome()
        let table = Table(columns: [("saves", 13), ("on disk", 10), ("stall per save", 15)])
        outcome.table = ["gpt-tiny, a checkpoint every 4 steps (stall: extra time of the saving step and the one after, medians)", table.header(),
                         table.row(["synchronous", Show.bytes(sizes[0]), Show.ms(stalls[0])]),
                         table.row(["asynchronous", Show.bytes(sizes[1]), Show.ms(stalls[1])])]
        outcome.figures = [("stall.svg", SVGChart.bars(title: "gpt-tiny: training stall per checkpoint", unit: "ms",
                                                       [("synchronous", stalls[0] * 1000), ("asynchronous", stalls[1] * 1000)]))]
        outcome.answers = try solve().merging(["async-over-sync-stall": stalls[0] > 0 ? stalls[1] / stalls[0] : 0]) { a, _ in a }
        outcome.record = [("stall_s", stalls), ("checkpoint_bytes_on_disk", sizes)]
        return outcome
    }
}
