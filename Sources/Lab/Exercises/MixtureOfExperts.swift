import Foundation
import Parallelism
import Workflows
import Workload

/// A mixture of experts trained for real: parameters against FLOPs, where the router sends
/// the tokens, what a capacity factor drops, and what expert parallelism keeps per rank and moves.
struct MixtureOfExpertsExercise: Exercise {
    let id = "mixture-of-experts"
    let chapter = "Mixture of Experts"
    let title = "Mixture of experts: parameters without FLOPs, and where the tokens go"
    let minutes = 25
    let needs = "one process, then two local processes"
    let background = """
        A mixture-of-experts block replaces the MLP with E smaller MLPs (experts) and a router: a linear layer
        that scores each token against every expert. Each token goes to its top-k experts, whose outputs are
        summed weighted by the softmax of the chosen scores (Mixtral). The model grows E-fold in MLP parameters
        while each token pays for k experts only: gpt-tiny-moe (8 experts of half gpt-tiny's MLP width, top-2,
        in blocks 1 and 3) has twice gpt-tiny's parameters and the same FLOPs a token. Routers collapse onto a
        few experts unless pushed apart: Switch's load-balancing loss E · Σₑ fₑ · Pₑ (fₑ the share of choices
        that went to e, Pₑ its mean probability) is 1 when the load is even. A capacity factor c lets each
        expert take at most c · (tokens · k / E) of a sequence's tokens; the rest are dropped and keep only their
        residual. fleet counts capacity per sequence, so every parallel layout routes and drops the same tokens.
        `fleet train --json` reports per step expert_tokens (per MoE block, each expert's assignments),
        expert_imbalance (the busiest expert over the mean), dropped_tokens and balance_loss.
        Expert parallelism (--ep N, carved from --dp) splits the experts over N ranks: each routes its own
        tokens, sends each token's rows to its experts' holder and gets the outputs back (four all-to-alls a
        block a step: forward and backward), and keeps only its experts' weights, gradients and optimizer
        state. The step line adds alltoall_bytes (what this rank handed in) and alltoall_s.
        """
    let questions = [
        Question("active-share-mixtral", "Mixtral 8x7B: parameters one token uses ÷ all parameters", unit: "ratio",
                 hint: "Attention and embeddings are always used; of each block's 8 experts, 2."),
        Question("flops-ratio-tiny", "Training FLOPs a token, gpt-tiny-moe ÷ gpt-tiny (128-token context)", unit: "ratio",
                 hint: "Two experts of width 256 do the work of one MLP of width 512; the router adds 8 outputs a token."),
        Question("capacity-per-sequence", "Most assignments one expert of gpt-tiny-moe takes from a 64-token sequence at --capacity-factor 1.0",
                 unit: "tokens", hint: "c · sequence · k / E, rounded up."),
        Question("measured-imbalance", "Measured: the busiest expert's assignments over the mean, last step, no capacity limit",
                 unit: "ratio", tolerance: 0.1, measured: true, hint: "Read expert_imbalance from the last step line; top-2 of 8 caps it at 4."),
        Question("measured-dropped-share", "Measured: dropped ÷ all assignments in the last step at --capacity-factor 1.0",
                 unit: "fraction", tolerance: 0.2, absolute: 0.02, measured: true,
                 hint: "dropped_tokens ÷ (8 sequences × 64 tokens × 2 choices × 2 MoE blocks)."),
        Question("held-share-ep2", "Parameters one rank of --dp 2 --ep 2 holds ÷ all of gpt-tiny-moe's", unit: "ratio",
                 hint: "Everything but the routed experts, plus half of them: each expert is 128·256 + 256 + 256·128 + 128 parameters."),
        Question("measured-alltoall-mb", "Measured: MB the reporting rank handed to the all-to-alls in the last step of --dp 2 --ep 2",
                 unit: "MB", tolerance: 0.15, measured: true,
                 hint: "alltoall_bytes ÷ 10⁶. Both ranks together hand in every kept assignment's 128 floats four times a block."),
    ]
    let stretch = "Raise the load-balancing pressure: does the imbalance after 100 steps fall as the balance loss falls toward 1? Then simulate mixtral-8x7b on 64 H100s (fleet simulate with a scenario naming it): memory per GPU is that of a 46.7 B model, MFU is counted on its 12.9 B active parameters."

    func arguments(capacity: Double?, quick: Bool, expertParallel: Bool = false) -> [String] {
        ["gpt-tiny-moe", "--batch", "8", "--seq", "64", "--steps", quick ? "6" : "40", "--log-every", "1000", "--eval-batches", "1"]
            + (capacity.map { ["--capacity-factor", String($0)] } ?? []) + (expertParallel ? ["--dp", "2", "--ep", "2"] : [])
    }

    func commands(quick: Bool) -> [String] {
        [nil, 1.0].map { "fleet train " + arguments(capacity: $0, quick: quick).joined(separator: " ") + " --json" }
            + ["fleet train " + arguments(capacity: nil, quick: quick, expertParallel: true).joined(separator: " ") + " --json"]
            + ["fleet plan gpt-tiny-moe --seq 64 --json   # the router, dispatch, each expert's products (routed) and combine"]
    }

    func solve() throws -> [String: Double] {
        let mixtral = ModelCatalog.mixtral8x7B, moe = ModelCatalog.gptTinyMoE
        let routed = Double(moe.expertLayers * moe.moe!.experts * moe.parametersPerExpert)
        return ["active-share-mixtral": Double(mixtral.activeParameterCount) / Double(mixtral.parameterCount),
                "flops-ratio-tiny": moe.trainingFLOPsPerToken / ModelCatalog.gptTiny.trainingFLOPsPerToken,
                "capacity-per-sequence": Double(MixtureOfExperts(experts: 8, topK: 2, expertHidden: 256, capacityFactor: 1).capacity(sequence: 64)),
                "held-share-ep2": (Double(moe.parameterCount) - routed / 2) / Double(moe.parameterCount)]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var rows: [(loss: Double, imbalance: Double, dropped: Double, rate: Double, tokens: [[Int]], state: Double, alltoall: Double)] = []
        for (capacity, expertParallel) in [(nil, false), (1.0, false), (nil, true)] as [(Double?, Bool)] {
            settings.progress("training gpt-tiny-moe" + (capacity.map { " at capacity factor \($0)" } ?? "") + (expertParallel ? " with --dp 2 --ep 2" : "") + "…")
            let run = try FleetChild.train(arguments(capacity: capacity, quick: settings.quick, expertParallel: expertParallel), in: settings.directory,
                                           name: expertParallel ? "moe-ep2" : capacity == nil ? "moe" : "moe-capacity")
            let last = run.steps.last ?? [:]
            let tokens = (last["expert_tokens"] as? [[Any]])?.map { $0.map { ($0 as? NSNumber)?.intValue ?? 0 } } ?? []
            rows.append((FleetChild.number(run.summary, "final_loss"), FleetChild.number(last, "expert_imbalance"),
                         FleetChild.number(last, "dropped_tokens"), FleetChild.median(run.steps, "tokens_per_s", skip: 2), tokens,
                         FleetChild.number(run.summary, "state_bytes_per_rank"), FleetChild.number(last, "alltoall_bytes")))
        }
        let table = Table(columns: [("run", 14), ("final loss", 10), ("busiest/mean", 12), ("dropped", 8), ("tokens/s", 9), ("state MB/rank", 13), ("a2a MB", 7)])
        outcome.table = ["gpt-tiny-moe, 8 × 64 tokens a step: the last step's routing", table.header()]
        for (name, row) in zip(["no capacity", "capacity 1.0", "dp2·ep2"], rows) {
            outcome.table.append(table.row([name, String(format: "%.4f", row.loss), String(format: "%.2f", row.imbalance),
                                            String(format: "%.0f", row.dropped), String(format: "%.0f", row.rate),
                                            String(format: "%.1f", row.state / 1e6), String(format: "%.2f", (row.alltoall.isNaN ? 0 : row.alltoall) / 1e6)]))
        }
        if let block = rows[0].tokens.last {
            outcome.figures = [("tokens-per-expert.svg", SVGChart.bars(title: "gpt-tiny-moe block 3, last step: assignments per expert", unit: "tokens",
                                                                       block.enumerated().map { ("e\($0.offset)", Double($0.element)) }))]
        }
        outcome.answers = try solve()
        outcome.answers["measured-imbalance"] = rows[0].imbalance
        outcome.answers["measured-dropped-share"] = rows[1].dropped / Double(8 * 64 * 2 * 2)
        outcome.answers["measured-alltoall-mb"] = rows[2].alltoall / 1e6
        outcome.record = [("final_loss", rows.map(\.loss)), ("expert_imbalance", rows.map(\.imbalance)),
                          ("dropped_tokens", rows.map(\.dropped)), ("tokens_per_s", rows.map(\.rate)),
                          ("state_bytes_per_rank", rows.map(\.state)), ("alltoall_bytes", rows.map(\.alltoall))]
        return outcome
    }
}
