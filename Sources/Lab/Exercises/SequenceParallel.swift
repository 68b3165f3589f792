import Engine
import Foundation
import Parallelism
import Workflows
import Workload

/// Sequence parallelism on real ranks: the activations it splits, measured against the same
/// tensor-parallel layout without it, and the collectives that replace the all-reduces.
struct SequenceParallel: Exercise {
    let id = "sequence-parallel"
    let chapter = "Memory"
    let title = "Sequence parallelism: splitting what tensor parallelism replicates"
    let minutes = 25
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Tensor parallelism (Megatron-LM) splits the attention heads and the MLP columns over tp ranks, but every
        rank still holds the whole residual stream, the LayerNorms and their inputs: per layer about
        s·b·h·(10 + 24/t) bytes of activations at 2 bytes an element (Korthikanti et al. 2022), of which the 10
        does not shrink with t. Sequence parallelism cuts those regions along the sequence: each rank keeps 1/t
        of every sequence's positions there, so a layer holds s·b·h·34/t. The f and g all-reduces become
        all-gather/reduce-scatter pairs — on a ring the same bytes — an all-gather before each split product,
        a reduce-scatter after; the LayerNorms' weight gradients are summed over the group, and stages hand on
        1/t of each sequence. fleet's trainer gathers each block's norm again in the backward pass for the
        weight gradients (as Megatron-LM does) rather than keep it whole. `fleet train --json` reports
        activation_bytes_per_rank: what each rank allocates for its micro-batches.
        """
    let questions = [
        Question("activation-ratio-llama70b-tp8", "Activations per layer of llama-70b at tp 8 (flash attention), with ÷ without sequence parallelism",
                 unit: "ratio", hint: "(34/t) ÷ (10 + 24/t)."),
        Question("tensor-collectives-per-layer", "Tensor-parallel collectives one layer issues in a forward and a backward pass under sequence parallelism in fleet's trainer",
                 unit: "collectives", hint: "Forward: a gather and a scatter for attention and for the MLP. Backward: gather the residual's gradient, scatter the input gradient, gather the norm again — twice — and sum the two norms' gradients."),
        Question("message-ratio-tp2", "A pipeline message of tp2·pp2 with ÷ without sequence parallelism", unit: "ratio", hint: "Each rank hands on its positions only."),
        Question("measured-activation-ratio-tp4", "Measured activation bytes per rank, tp4·sp ÷ tp4 (gpt-tiny)", unit: "ratio", tolerance: 0.15, measured: true,
                 hint: "gpt-tiny has no dropout and its attention scores and MLP dominate: the split part is smaller than in the paper's model."),
    ]
    let stretch = "Price the two layouts with fleet simulate scenarios/llama-70b-sweep.yaml: which tp × pp points fit in 141 GiB without recomputation only with sequence_parallel: true, and what does the extra all-gather in the backward pass cost?"

    func arguments(sequenceParallel: Bool, quick: Bool) -> [String] {
        ["gpt-tiny", "--tp", "4", "--batch", "8", "--seq", "64", "--steps", quick ? "6" : "20", "--log-every", "1000", "--eval-batches", "1"]
            + (sequenceParallel ? ["--sequence-parallel"] : [])
    }

    func commands(quick: Bool) -> [String] {
        [false, true].map { "fleet train " + arguments(sequenceParallel: $0, quick: quick).joined(separator: " ") + " --json" }
            + ["fleet plan gpt-tiny --tp 2 --pp 2 --sequence-parallel --seq 64 --json   # the gathers and scatters in each rank's program",
               "fleet bench train gpt-tiny --tp 2 --sequence-parallel   # activations, tensor time and speed beside plain tp2"]
    }

    func solve() throws -> [String: Double] {
        func activations(_ sp: Bool) -> Double {
            MemoryModel.stages(model: ModelCatalog.llama70B, layout: ParallelLayout(tp: 8, sequenceParallel: sp), zero: 0, microbatchSequences: 1,
                               sequence: 8192, precision: .bf16, recompute: .none, inFlight: [1])[0].activations
        }
        func program(_ sp: Bool) -> StepProgram {
            StepProgram(plan: ShardPlan(model: ModelCatalog.gptTiny, layout: ParallelLayout(tp: 2, pp: 2, microbatches: 2, sequenceParallel: sp)),
                        rank: 0, options: StepOptions(batch: 8, sequence: 64))
        }
        let split = program(true), layers = split.chunks.reduce(0) { $0 + $1.count }
        let work = split.chunkWork[0], tensor = (work.forward + work.backward).filter {
            if case .collective(_, .tensor, _) = $0 { return true } else { return false }
        }
        // Stage 0 also gathers the residual's gradient once for the embeddings' backward pass.
        return ["activation-ratio-llama70b-tp8": activations(true) / activations(false),
                "tensor-collectives-per-layer": Double(tensor.count - 1) / Double(layers),
                "message-ratio-tp2": split.totals.sentBytes.value / program(false).totals.sentBytes.value]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var rows: [(activations: Double, tensor: Double, bytes: Double, rate: Double)] = []
        for sp in [false, true] {
            settings.progress("training gpt-tiny tp4\(sp ? " with sequence parallelism" : "")…")
            let run = try FleetChild.train(arguments(sequenceParallel: sp, quick: settings.quick), in: settings.directory, name: sp ? "tp4-sp" : "tp4")
            rows.append(((run.summary["activation_bytes_per_rank"] as? Double) ?? 0, FleetChild.median(run.steps, "tensor_parallel_s", skip: 2),
                         FleetChild.median(run.steps, "tp_bytes", skip: 0), FleetChild.median(run.steps, "tokens_per_s", skip: 2)))
        }
        let table = Table(columns: [("layout", 8), ("activations MiB", 16), ("tp ms/step", 11), ("tp MiB/step", 12), ("tokens/s", 9)])
        outcome.table = ["gpt-tiny tp4, 8 × 64 tokens per step: activations each rank allocates, and the tensor group's traffic", table.header()]
        for (name, row) in zip(["tp4", "tp4·sp"], rows) {
            outcome.table.append(table.row([name, String(format: "%.2f", row.activations / 1_048_576), String(format: "%.1f", row.tensor * 1000),
                                            String(format: "%.2f", row.bytes / 1_048_576), String(format: "%.0f", row.rate)]))
        }
        outcome.figures = [("activations-per-rank.svg", SVGChart.bars(title: "gpt-tiny tp4: activation buffers per rank (MiB)", unit: "MiB",
                                                                      zip(["tp4", "tp4·sp"], rows).map { ($0, $1.activations / 1_048_576) }))]
        outcome.answers = try solve()
        outcome.answers["measured-activation-ratio-tp4"] = rows[0].activations > 0 ? rows[1].activations / rows[0].activations : 0
        outcome.record = [("activation_bytes_per_rank", rows.map(\.activations)), ("tensor_parallel_s", rows.map(\.tensor)),
                          ("tp_bytes", rows.map(\.bytes)), ("tokens_per_s", rows.map(\.rate))]
        return outcome
    }
}
