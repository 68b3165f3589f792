import Engine
import Foundation
import Workflows
import Workload

/// Ring attention trained for real and at scale: what a rank of a context-parallel group holds
/// and moves, causal load balancing, too few sequences for the ranks, and where the K/V ring
/// stops hiding behind the attention.
struct ContextParallel: Exercise {
    let id = "context-parallel"
    let chapter = "Context Parallelism"
    let title = "Ring attention: splitting each sequence, and when the K/V ring stops hiding"
    let minutes = 30
    let needs = "two local processes, then the simulator"
    let background = """
        Data parallelism needs at least one sequence per rank. With long sequences and a small batch there are
        fewer sequences than ranks; context parallelism (ring attention) gives each of cp ranks 1/cp of every
        sequence's positions instead. The norms, products and MLP are per position and need nothing from the
        others, but a rank's queries must meet every key: for each attention the group's K and V blocks travel
        round a ring (cp − 1 hops, each a block), overlapped with the scores; the backward pass sends them round
        again and passes their gradients back. fleet carves cp from dp: dp/cp groups hold different sequences,
        so the batch need only divide dp/cp, and every rank holds the same number of tokens whatever cp is.
        Causal attention makes a query meet only the keys at or before it, so with plain blocks the last rank
        does the most work; --cp-balance gives rank r chunk r and chunk 2·cp − 1 − r of 2·cp chunks instead.
        First, for real: gpt-tiny (4 layers, width 128) at 128 tokens, 8 sequences a step, on two local
        processes as --dp 2 and as --dp 2 --cp 2 (each rank then holds 64 positions of all 8 sequences);
        `fleet train --json` reports cp_bytes (what this rank handed to the ring's passes and reduce-scatters)
        and context_s. Then at scale, in the simulator: Llama 3 8B (32 layers, 8 K/V heads of 128) at 8,192
        tokens on 8 nodes × 8 H100, dp 64, 16 sequences a step, bf16, ZeRO-1, full recomputation; NVLink
        inside a node, 400 Gb/s between.
        """
    let questions = [
        Question("causal-work-ratio", "gpt-tiny at 128 tokens, --cp 2 in plain blocks: keys rank 1's queries meet ÷ rank 0's", unit: "ratio",
                 hint: "Query i meets i + 1 keys; rank 0 holds positions 0–63, rank 1 64–127."),
        Question("measured-cp-mb", "Measured: MB the reporting rank of --dp 2 --cp 2 handed to the ring in the last step", unit: "MB",
                 tolerance: 0.01, measured: true,
                 hint: "A K/V block is 8 sequences × 64 positions × 2 × 128 floats; each layer passes it forward and again backward, then reduce-scatters both ranks' blocks."),
        Question("smallest-cp", "Smallest cp (a power of two) that lets 16 sequences feed 64 data-parallel ranks", unit: "ranks",
                 hint: "dp/cp groups each need whole sequences of the 16."),
        Question("kv-mb-cp8", "MB of K and V one rank receives per layer in the forward pass at cp 8 (bf16)", unit: "MB",
                 hint: "Its block: (sequences a rank holds) × (8,192/cp positions) × K and V × 8 heads × 128 × 2 bytes; it receives cp − 1 blocks."),
        Question("ring-exposed-cp16", "Simulated: seconds of ring traffic the attention does not hide at cp 16", unit: "s", tolerance: 0.05,
                 hint: "cp 16 spans two nodes: part of every ring crosses the 400 Gb/s links."),
        Question("slowdown-cp16", "Simulated step time, cp 16 ÷ cp 8", unit: "ratio", tolerance: 0.03,
                 hint: "The compute per rank is the same; only the ring differs."),
    ]
    let stretch = "Why does the K/V traffic per rank grow with cp at a fixed batch and GPU count, while the attention work per rank does not? Try tp 8 inside each node and cp across nodes instead."
    let degrees = [4, 8, 16]

    func yaml(cp: Int) -> String {
        Simulated.cluster(nodes: 8) + """

            workload: {model: llama-8b, batch: 16, sequence: 8192, precision: bf16, efficiency: 0.5}
            layout: {dp: 64, tp: 1, pp: 1, cp: \(cp), microbatches: 1, zero: 1, recompute: full}
            """
    }

    /// The real runs: plain data parallelism, then each sequence split over the pair, in blocks and balanced.
    let runs: [(name: String, flags: [String])] = [("dp2", ["--dp", "2"]), ("dp2·cp2", ["--dp", "2", "--cp", "2"]),
                                                   ("dp2·cp2·lb", ["--dp", "2", "--cp", "2", "--cp-balance"])]

    func arguments(_ flags: [String], quick: Bool) -> [String] {
        ["gpt-tiny", "--batch", "8", "--seq", "128", "--steps", quick ? "6" : "30", "--log-every", "1000", "--eval-batches", "1"] + flags
    }

    func commands(quick: Bool) -> [String] {
        runs.map { "fleet train " + arguments($0.flags, quick: quick).joined(separator: " ") + " --json" } + [
         "fleet simulate SCENARIO.yaml   # the setup above with sweep: {cp: [1, 4, 8, 16]} (cp 1 is refused: 16 sequences, 64 ranks)",
         "fleet plan llama-8b --dp 8 --cp 4 --batch 2 --seq 8192   # the ring's all-gathers and reduce-scatters in each rank's step"]
    }

    func steps() throws -> [StepReport] { try degrees.map { try Simulated.step(yaml(cp: $0), name: "llama-8b cp \($0)").1 } }

    func solve() throws -> [String: Double] { answers(try steps()) }

    func answers(_ r: [StepReport]) -> [String: Double] {
        let model = ModelCatalog.llama8B, cp = 8.0
        let block = 16 / (64 / cp) * (8192 / cp) * 2 * Double(model.kvHeads * model.headSize) * 2
        // Causal work of each rank of gpt-tiny's pair in plain blocks: query i meets i + 1 keys.
        let keys = [0..<64, 64..<128].map { $0.reduce(0) { $0 + $1 + 1 } }
        return ["causal-work-ratio": Double(keys[1]) / Double(keys[0]), "smallest-cp": 4, "kv-mb-cp8": (cp - 1) * block / 1e6,
                "ring-exposed-cp16": r[2].breakdown.contextParallel.seconds, "slowdown-cp16": r[2].stepTime.seconds / r[1].stepTime.seconds]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var measured: [(loss: Double, rate: Double, context: Double, bytes: Double)] = []
        for (name, flags) in runs {
            settings.progress("training gpt-tiny as \(name)…")
            let run = try FleetChild.train(arguments(flags, quick: settings.quick), in: settings.directory, name: name.replacingOccurrences(of: "·", with: ""))
            let last = run.steps.last ?? [:]
            measured.append((FleetChild.number(run.summary, "final_loss"), FleetChild.median(run.steps, "tokens_per_s", skip: 2),
                             FleetChild.median(run.steps, "context_s", skip: 2), FleetChild.number(last, "cp_bytes")))
        }
        let trained = Table(columns: [("layout", 11), ("final loss", 10), ("tokens/s", 9), ("ring ms", 8), ("cp MB", 6)])
        outcome.table = ["gpt-tiny, 8 × 128 tokens a step on two local processes", trained.header()]
        for ((name, _), row) in zip(runs, measured) {
            outcome.table.append(trained.row([name, String(format: "%.4f", row.loss), String(format: "%.0f", row.rate),
                                              String(format: "%.1f", row.context * 1000), String(format: "%.2f", row.bytes / 1e6)]))
        }
        outcome.table.append("")
        let reports = try steps()
        let table = Table(columns: [("cp", 4), ("sequences/rank", 14), ("positions", 9), ("step", 11), ("ring exposed", 12), ("GiB/GPU", 8)])
        outcome.table += ["Llama 3 8B at 8,192 tokens on 64 H100 (dp 64), 16 sequences a step", table.header()]
        for (cp, r) in zip(degrees, reports) {
            outcome.table.append(table.row(["\(cp)", "\(16 / (64 / cp))", "\(8192 / cp)", Show.ms(r.stepTime.seconds),
                                            Show.ms(r.breakdown.contextParallel.seconds), String(format: "%.1f", r.memory.total / 1_073_741_824)]))
        }
        outcome.figures = [("ring-exposed.svg", SVGChart.bars(title: "Llama 3 8B: ring traffic not hidden", unit: "ms per step",
                                                             zip(degrees, reports).map { ("cp \($0)", $1.breakdown.contextParallel.seconds * 1000) }))]
        outcome.answers = answers(reports)
        outcome.answers["measured-cp-mb"] = measured[1].bytes / 1e6
        outcome.record = [("cp", degrees.map(Double.init)), ("step_s", reports.map(\.stepTime.seconds)),
                          ("context_s", reports.map(\.breakdown.contextParallel.seconds)),
                          ("trained_tokens_per_s", measured.map(\.rate)), ("trained_cp_bytes", measured.map(\.bytes))]
        return outcome
    }
}
