import Foundation
import Workflows
import Workload

/// Tensor parallelism on real ranks: the f/g all-reduces Megatron puts in every layer.
struct TensorParallelTraffic: Exercise {
    let id = "tp-traffic"
    let chapter = "Tensor Parallelism"
    let title = "Tensor parallelism: count and size the all-reduces of one step, then watch them happen"
    let minutes = 25
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Megatron-style tensor parallelism splits attention by heads (QKV column-parallel, output row-parallel)
        and the MLP (first matrix column-, second row-parallel). Each of the two blocks then needs one
        all-reduce of its output activations in the forward pass (g) and one of the input gradients in the
        backward pass (f): 4 all-reduces per layer per micro-batch, each of b·s·h values (fp32: 4 bytes).
        Because they sit on the critical path, tensor parallelism stays inside a node's fast links.
        The run: gpt-tiny (4 layers, h = 128), tp2, 4 sequences of 64 tokens, one micro-batch.
        """
    let questions = [
        Question("allreduces-per-step", "Tensor-parallel all-reduces per step on each rank", unit: "all-reduces",
                 hint: "2 blocks × (1 forward + 1 backward) × layers."),
        Question("bytes-per-allreduce", "Bytes in each of those all-reduces", unit: "bytes",
                 hint: "b · s · h values of 4 bytes."),
        Question("tp-share", "Fraction of the measured step spent in tensor-parallel communication", unit: "fraction",
                 tolerance: 0, absolute: 0.15, measured: true, hint: "Small activations: per-message latency and copies dominate on one machine."),
    ]
    let stretch = "With --sequence-parallel (Korthikanti et al.) the all-reduces become reduce-scatter + all-gather pairs: how do the bytes per rank change, and what memory does it save?"
    let batch = 4, sequence = 64

    var arguments: [String] { ["gpt-tiny", "--tp", "2", "--batch", "\(batch)", "--seq", "\(sequence)", "--steps", "12", "--log-every", "1000"] }

    func commands(quick: Bool) -> [String] { ["fleet plan gpt-tiny --tp 2 --batch 4 --seq 64", "fleet train " + arguments.joined(separator: " ") + " --json"] }

    func solve() throws -> [String: Double] {
        let m = ModelCatalog.gptTiny
        return ["allreduces-per-step": Double(4 * m.layers), "bytes-per-allreduce": Double(batch * sequence * m.dModel * 4)]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        settings.progress("training gpt-tiny with tp2…")
        let run = try FleetChild.train(arguments, in: settings.directory, name: "tp2")
        let solved = try solve()
        let count = FleetChild.median(run.steps, "tp_allreduces", skip: 0), bytes = FleetChild.median(run.steps, "tp_bytes", skip: 0)
        let share = FleetChild.median(run.steps, "tensor_parallel_s", skip: 2) / FleetChild.median(run.steps, "step_s", skip: 2)
        var outcome = LabOutcome()
        let table = Table(columns: [("", 26), ("predicted", 12), ("measured", 12)])
        outcome.table = ["gpt-tiny tp2, 4 × 64 tokens, one micro-batch (the reporting rank's own traffic)", table.header(),
                         table.row(["all-reduces per step", Show.num(solved["allreduces-per-step"]!), Show.num(count)]),
                         table.row(["bytes per step", Show.bytes(solved["allreduces-per-step"]! * solved["bytes-per-allreduce"]!), Show.bytes(bytes)]),
                         table.row(["tp share of the step", "—", Show.pct(share)])]
        if count != solved["allreduces-per-step"] { outcome.notes.append("the run made \(Show.num(count)) all-reduces, not the \(Show.num(solved["allreduces-per-step"]!)) predicted") }
        let compute = FleetChild.median(run.steps, "compute_s", skip: 2), tp = FleetChild.median(run.steps, "tensor_parallel_s", skip: 2)
        outcome.figures = [("step.svg", SVGChart.bars(title: "gpt-tiny tp2: where a step goes (median)", unit: "ms",
                                                      [("compute", compute * 1000), ("tensor-parallel all-reduce", tp * 1000)]))]
        outcome.answers = solved.merging(["tp-share": share]) { a, _ in a }
        outcome.record = [("tp_allreduces", count), ("tp_bytes", bytes), ("tp_share", share)]
        return outcome
    }
}
