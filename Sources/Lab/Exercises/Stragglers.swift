import Foundation
import Workflows

/// One slow rank sets the pace of a synchronous job: measured on real ranks, and in numbers.
struct Stragglers: Exercise {
    let id = "stragglers"
    let chapter = "Stragglers"
    let title = "One slow rank sets everyone's pace: a 3× straggler in data parallelism"
    let minutes = 20
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Synchronous data parallelism waits at every gradient all-reduce for the slowest replica, so a step takes
        max over ranks of (compute_r) + communication. One rank computing f× slower makes every rank's step
        about f · compute + communication. At scale the odds compound: if each of n devices is slow in a step
        with probability q, the step is slowed with probability 1 − (1 − q)^n.
        The run: gpt-tiny dp2, rank 1's compute made 3× slower from step 3 on, against the same run without it.
        """
    let questions = [
        Question("p-slow-step", "Probability that a step on 1,000 GPUs has at least one straggler when each is slow with probability 0.001",
                 unit: "probability", tolerance: 0.01, hint: "1 − (1 − q)^n."),
        Question("step-ratio", "Measured step time with the 3× straggler ÷ without", unit: "ratio", tolerance: 0.35, measured: true,
                 hint: "Only compute slows; the all-reduce and the other rank's wait make up the rest."),
        Question("straggler-rank", "Which rank does fleet name as the straggler?", unit: "rank", tolerance: 0, absolute: 0.1, measured: true,
                 hint: "fleet compares each rank's compute with its peers' median."),
    ]
    let stretch = "Replace the slow rank with a slow pipeline stage (--pp 2): who waits now, and how does fleet tell a slow stage from a bubble?"

    func arguments(slow: Bool) -> [String] {
        ["gpt-tiny", "--dp", "2", "--batch", "16", "--seq", "64", "--steps", "14", "--log-every", "1000"]
            + (slow ? ["--inject", "slow:rank=1,factor=3,steps=3-14"] : [])
    }

    func commands(quick: Bool) -> [String] { [false, true].map { "fleet train " + arguments(slow: $0).joined(separator: " ") + " --json" } }

    func solve() throws -> [String: Double] { ["p-slow-step": 1 - pow(1 - 0.001, 1000)] }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        settings.progress("dp2 without a straggler…")
        let plain = try FleetChild.train(arguments(slow: false), in: settings.directory, name: "plain")
        settings.progress("dp2 with rank 1 computing 3× slower…")
        let slow = try FleetChild.train(arguments(slow: true), in: settings.directory, name: "slow")
        let (a, b) = (FleetChild.median(plain.steps, "step_s", skip: 3), FleetChild.median(slow.steps, "step_s", skip: 3))
        let named = (slow.summary["straggler_ranks"] as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? []
        var outcome = LabOutcome()
        let table = Table(columns: [("run", 22), ("step", 10), ("compute (rank 0)", 17), ("stragglers named", 17)])
        outcome.table = ["gpt-tiny dp2, 16 × 64 tokens (medians, steps 4–14)", table.header(),
                         table.row(["no straggler", Show.ms(a), Show.ms(FleetChild.median(plain.steps, "compute_s", skip: 3)), "—"]),
                         table.row(["rank 1 3× slower", Show.ms(b), Show.ms(FleetChild.median(slow.steps, "compute_s", skip: 3)),
                                    named.map { "rank \(Int($0))" }.joined(separator: ", ")])]
        outcome.figures = [("stragglers.svg", SVGChart.lines(title: "dp2 step time, with and without a 3× straggler", unit: "ms per step",
                                                             labels: (1...min(plain.steps.count, slow.steps.count)).map { "\($0)" },
                                                             series: [("no straggler", "#4878a8", plain.steps.map { FleetChild.number($0, "step_s") * 1000 }),
                                                                      ("rank 1 3× slower from step 3", "#d08040", slow.steps.map { FleetChild.number($0, "step_s") * 1000 })]))]
        outcome.answers = try solve().merging(["step-ratio": b / a, "straggler-rank": named.first ?? -1]) { a, _ in a }
        outcome.record = [("step_s", [a, b]), ("straggler_ranks", named)]
        return outcome
    }
}
