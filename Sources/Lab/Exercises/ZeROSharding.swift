import Engine
import Foundation
import Parallelism
import Workflows
import Workload

/// ZeRO-1, 2 and 3 on real ranks: what each rank holds, measured from its pages, against what
/// the memory model predicts, and what the sharding costs in speed.
struct ZeROSharding: Exercise {
    let id = "zero-sharding"
    let chapter = "Memory"
    let title = "ZeRO-1, 2 and 3 on real ranks: memory per rank, measured, and its price"
    let minutes = 30
    let needs = "worker processes (ZeroMQ)"
    let background = """
        fleet trains in fp32 with AdamW: per parameter a rank holds its weight (4 bytes), its gradient (4) and
        two moments (8), 16 bytes. Over dp data-parallel ranks ZeRO (Rajbhandari et al. 2020) shards the
        moments (stage 1: 4 + 4 + 8/dp), then the gradients (stage 2: 4 + 4/dp + 8/dp), then the weights
        (stage 3, PyTorch FSDP's full sharding: 16/dp). Stages 1 and 2 reduce-scatter the gradients and
        all-gather the updated weights once per step; stage 3 keeps only its blocks of the weights and
        all-gathers each layer's before every forward and backward pass that uses it (one layer ahead, so the
        gather travels while the previous layer computes), then lets the rest go again.
        fleet's ranks map the whole model but keep only the pages of what they hold (madvise gives the rest
        back), and `fleet train --json` reports state_bytes_per_rank (elements kept × 4) and
        resident_state_bytes_per_rank (the pages the kernel reports in memory). The run trains gpt-tiny with
        dp4 under each stage.
        """
    let questions = [
        Question("state-ratio-zero1-dp4", "Parameters + gradients + optimizer state per rank, ZeRO-1 ÷ no ZeRO, dp4 (fp32 AdamW)", unit: "ratio",
                 hint: "(4 + 4 + 8/dp) ÷ 16."),
        Question("state-ratio-zero2-dp4", "The same for ZeRO-2", unit: "ratio", hint: "(4 + 4/dp + 8/dp) ÷ 16."),
        Question("state-ratio-zero3-dp4", "The same for ZeRO-3", unit: "ratio", hint: "16/dp ÷ 16."),
        Question("gathers-per-step-zero3", "Under ZeRO-3 with m = 4 micro-batches, how many times per step is each layer's weight gathered?", unit: "gathers",
                 hint: "Once for every forward and every backward pass of every micro-batch."),
        Question("measured-state-ratio-zero3", "Measured resident state per rank, ZeRO-3 ÷ no ZeRO (dp4)", unit: "ratio",
                 tolerance: 0.1, measured: true, hint: "The pages of the kept ranges: a few pages more than the elements."),
    ]
    let stretch = "Run fleet bench train gpt-tiny --dp 4 --zero 3 and --zero 1: which costs more time here, and why would the answer change on a fabric 50× slower than shared memory? Price it with fleet simulate scenarios/llama-8b-zero-sweep.yaml."

    func arguments(zero: Int, quick: Bool) -> [String] {
        ["gpt-tiny", "--dp", "4", "--zero", "\(zero)", "--batch", "16", "--seq", "64", "--steps", quick ? "6" : "20", "--log-every", "1000", "--eval-batches", "1"]
    }

    func commands(quick: Bool) -> [String] {
        (0...3).map { "fleet train " + arguments(zero: $0, quick: quick).joined(separator: " ") + " --json" }
            + ["fleet plan gpt-tiny --dp 4 --zero 3 --microbatches 4 --batch 16 --json   # the gathers in each rank's program",
               "fleet bench train gpt-tiny --dp 4 --zero 3   # state and speed beside the unsharded layout"]
    }

    /// The memory model's state per rank (weights + gradients + optimizer) for gpt-tiny dp4 under `zero`.
    func modelled(zero: Int) -> Double {
        MemoryModel.stages(model: ModelCatalog.gptTiny, layout: ParallelLayout(dp: 4, zeroStage: zero), zero: zero, microbatchSequences: 4,
                           sequence: 64, precision: .fp32, recompute: .none, inFlight: [])
            .map { $0.weights + $0.gradients + $0.optimizer }.max()!
    }

    /// Layer 0's gathers in one step's program (ZeRO-3, m = 4), read from rank 0's plan: each
    /// pass gathers its units in order, each unit one all-gather per bucket.
    func gathersPerLayer() -> Int {
        let layout = ParallelLayout(dp: 4, microbatches: 4, zeroStage: 3)
        let program = StepProgram(plan: ShardPlan(model: ModelCatalog.gptTiny, layout: layout), rank: 0, options: StepOptions(batch: 16, sequence: 64))
        let layers = 0..<ModelCatalog.gptTiny.layers
        var count = 0
        for block in program.blocks {
            guard case let .schedule(action) = block.phase else { continue }
            let units: [ParameterUnit]
            switch action {
            case .forward: units = ParameterUnit.forward(layers: layers, embed: true, head: true)
            case .backward: units = ParameterUnit.backward(layers: layers, head: true)
            default: continue
            }
            let owners = units.flatMap { unit in program.sync.buckets(for: unit).map { _ in unit } }
            let gathers = block.ops.filter { if case .collective(.allGather, .data, _) = $0 { return true } else { return false } }
            precondition(gathers.count == owners.count, "a pass gathers each of its units' buckets once")
            count += owners.filter { $0 == .layer(0) }.count
        }
        return count / max(1, program.sync.buckets(for: .layer(0)).count)
    }

    func solve() throws -> [String: Double] {
        let none = modelled(zero: 0)
        return ["state-ratio-zero1-dp4": modelled(zero: 1) / none, "state-ratio-zero2-dp4": modelled(zero: 2) / none,
                "state-ratio-zero3-dp4": modelled(zero: 3) / none, "gathers-per-step-zero3": Double(gathersPerLayer())]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var rows: [(held: Double, resident: Double, rate: Double)] = []
        for zero in 0...3 {
            settings.progress("training gpt-tiny dp4 under ZeRO-\(zero)…")
            let run = try FleetChild.train(arguments(zero: zero, quick: settings.quick), in: settings.directory, name: "dp4-zero\(zero)")
            rows.append(((run.summary["state_bytes_per_rank"] as? Double) ?? 0, (run.summary["resident_state_bytes_per_rank"] as? Double) ?? 0,
                         FleetChild.median(run.steps, "tokens_per_s", skip: 2)))
        }
        let table = Table(columns: [("ZeRO", 5), ("model MiB", 10), ("held MiB", 9), ("resident MiB", 13), ("tokens/s", 9)])
        outcome.table = ["gpt-tiny dp4, 16 × 64 tokens per step: the most any rank holds of weights, gradients and AdamW moments", table.header()]
        for (zero, row) in rows.enumerated() {
            outcome.table.append(table.row(["\(zero)", String(format: "%.2f", modelled(zero: zero) / 1_048_576), String(format: "%.2f", row.held / 1_048_576),
                                            String(format: "%.2f", row.resident / 1_048_576), String(format: "%.0f", row.rate)]))
        }
        outcome.figures = [("state-per-rank.svg", SVGChart.bars(title: "gpt-tiny dp4: resident state per rank (MiB)", unit: "MiB",
                                                                rows.enumerated().map { ("ZeRO-\($0.offset)", $0.element.resident / 1_048_576) }))]
        outcome.answers = try solve()
        outcome.answers["measured-state-ratio-zero3"] = rows[0].resident > 0 ? rows[3].resident / rows[0].resident : 0
        outcome.record = [("state_bytes_per_rank", rows.map(\.held)), ("resident_state_bytes_per_rank", rows.map(\.resident)),
                          ("tokens_per_s", rows.map(\.rate))]
        return outcome
    }
}
