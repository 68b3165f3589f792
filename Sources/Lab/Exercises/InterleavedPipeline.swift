import Foundation
import Parallelism
import Workflows

/// Interleaved 1F1B: V chunks per stage shrink the bubble V-fold, for V× the messages and more
/// activations in flight; real pp2 ranks run 1F1B and interleaved side by side.
struct InterleavedPipeline: Exercise {
    let id = "interleaved-pipeline"
    let chapter = "Pipeline Parallelism"
    let title = "Interleaved 1F1B: a V-fold smaller bubble, paid in messages and memory"
    let minutes = 35
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Interleaved 1F1B (Narayanan et al. 2021, Megatron-LM) cuts the model into p·V chunks and gives stage s
        the chunks s, s + p, s + 2p, …: a micro-batch visits every stage V times. A chunk pass is 1/V of a
        stage's pass, so the fill and drain shrink V-fold:
          bubble = (p − 1) / (V·m + p − 1)        (1F1B: V = 1)
        The price: every one of the p·V − 1 chunk boundaries sends each micro-batch's activations forward and
        its gradients back, 2·(p·V − 1)·m messages per step instead of 2·(p − 1)·m; and the warm-up runs
        2·(p − 1) + (V − 1)·p forwards before the first backward, so stage 0 holds up to
        2·(p − 1) + (V − 1)·p + 1 chunk passes (each 1/V of a stage's activations) where 1F1B holds p micro-batches.
        m must be a multiple of p: micro-batches go through the chunks in groups of p.
        The run trains gpt-tiny with pp2 under both schedules and measures each rank's idle share (1 − compute ÷ step).
        """
    let questions = [
        Question("bubble-1f1b-p4-m8", "Bubble fraction of 1F1B with 4 stages and 8 micro-batches", unit: "fraction", hint: "(p − 1)/(m + p − 1)."),
        Question("bubble-interleaved-p4-m8-v2", "The same with 2 chunks per stage (interleaved)", unit: "fraction", hint: "(p − 1)/(V·m + p − 1)."),
        Question("message-ratio-p4-v2", "Pipeline messages per step, interleaved (V = 2) ÷ 1F1B, with p = 4", unit: "ratio",
                 hint: "Count the boundaries: p·V − 1 against p − 1."),
        Question("activation-ratio-p4-m8-v2", "Activation memory stage 0 holds at its peak, interleaved (V = 2) ÷ 1F1B, p = 4, m = 8", unit: "ratio",
                 hint: "(2·(p − 1) + (V − 1)·p + 1) chunk passes of 1/V each, against p micro-batches."),
        Question("idle-reduction-pp2-m4", "Measured idle share of the step, 1F1B minus interleaved (pp2, m = 4, V = 2)", unit: "fraction",
                 tolerance: 0.5, absolute: 0.03, measured: true, hint: "Predicted: 1/5 − 1/9 ≈ 0.089; the messages' own time eats into it."),
    ]
    let stretch = "With V = 2 the bubble halves; why does Megatron stop at a few chunks? Price V = 4 and 8 for gpt-tiny on 2 stages with fleet plan, then think of a real 400 Gb/s link carrying 2·(pV − 1)·m activation messages."

    var quickArguments: [String] { ["gpt-tiny", "--pp", "2", "--microbatches", "4", "--batch", "16", "--seq", "64", "--log-every", "1000"] }

    func arguments(interleaved: Bool, quick: Bool) -> [String] {
        quickArguments + ["--steps", quick ? "20" : "60"] + (interleaved ? ["--schedule", "interleaved", "--virtual-stages", "2"] : [])
    }

    func commands(quick: Bool) -> [String] {
        ["fleet plan gpt-tiny --pp 4 --microbatches 8", "fleet plan gpt-tiny --pp 4 --microbatches 8 --schedule interleaved --virtual-stages 2 --batch 16",
         "fleet train " + arguments(interleaved: false, quick: quick).joined(separator: " ") + " --json",
         "fleet train " + arguments(interleaved: true, quick: quick).joined(separator: " ") + " --json",
         "fleet bench train gpt-tiny --pp 2 --microbatches 4 --schedule interleaved --steps 100   # both, side by side"]
    }

    func report(p: Int, m: Int, v: Int) throws -> ScheduleReport {
        try PipelineSchedule(kind: v > 1 ? .interleaved : .oneFOneB, stages: p, microbatches: m, virtualStages: v).check()
    }

    /// Pipeline messages of one step, counted from the schedule's sends.
    func messages(p: Int, m: Int, v: Int) -> Int {
        PipelineSchedule(kind: v > 1 ? .interleaved : .oneFOneB, stages: p, microbatches: m, virtualStages: v).actions
            .reduce(0) { $0 + $1.filter(\.isSend).count }
    }

    func solve() throws -> [String: Double] {
        let plain = try report(p: 4, m: 8, v: 1), interleaved = try report(p: 4, m: 8, v: 2)
        return ["bubble-1f1b-p4-m8": plain.bubbleFraction, "bubble-interleaved-p4-m8-v2": interleaved.bubbleFraction,
                "message-ratio-p4-v2": Double(messages(p: 4, m: 8, v: 2)) / Double(messages(p: 4, m: 8, v: 1)),
                // A chunk pass holds 1/V of a stage's micro-batch activations.
                "activation-ratio-p4-m8-v2": Double(interleaved.peakInFlightActivations[0]) / 2 / Double(plain.peakInFlightActivations[0])]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var idle: [Double] = [], throughput: [Double] = []
        // 1F1B, interleaved, and 1F1B again: the machine's speed may drift within a minute, so
        // the plain schedule's idle share is the mean of the runs either side.
        for (index, interleaved) in [false, true, false].enumerated() {
            settings.progress("training gpt-tiny with pp2, \(interleaved ? "interleaved (2 chunks per stage)" : "1F1B")…")
            let run = try FleetChild.train(arguments(interleaved: interleaved, quick: settings.quick), in: settings.directory,
                                           name: "pp2-\(interleaved ? "v2" : "1f1b")-\(index)")
            idle.append(1 - FleetChild.median(run.steps, "compute_s", skip: 2) / FleetChild.median(run.steps, "step_s", skip: 2))
            throughput.append(FleetChild.median(run.steps, "tokens_per_s", skip: 2))
        }
        let plainIdle = (idle[0] + idle[2]) / 2, plainRate = (throughput[0] + throughput[2]) / 2
        let predicted = (try report(p: 2, m: 4, v: 1).bubbleFraction, try report(p: 2, m: 4, v: 2).bubbleFraction)
        let table = Table(columns: [("schedule", 12), ("bubble", 8), ("messages", 9), ("measured idle", 14), ("tokens/s", 9)])
        outcome.table = ["gpt-tiny pp2, 4 micro-batches of 4 × 64 tokens: schedule against rank 0's measured idle (1 − compute ÷ step, medians)",
                         table.header(),
                         table.row(["1f1b", Show.pct(predicted.0), "\(messages(p: 2, m: 4, v: 1))", Show.pct(plainIdle), String(format: "%.0f", plainRate)]),
                         table.row(["interleaved", Show.pct(predicted.1), "\(messages(p: 2, m: 4, v: 2))", Show.pct(idle[1]), String(format: "%.0f", throughput[1])])]
        outcome.figures = [("interleaved-p4-m8.svg", PipelineBubble().timeline(try report(p: 4, m: 8, v: 2), title: "interleaved 1F1B, p = 4, m = 8, V = 2")),
                           ("1f1b-p4-m8.svg", PipelineBubble().timeline(try report(p: 4, m: 8, v: 1), title: "1F1B, p = 4, m = 8"))]
        outcome.answers = try solve()
        outcome.answers["idle-reduction-pp2-m4"] = plainIdle - idle[1]
        outcome.record = [("predicted_bubble", [predicted.0, predicted.1]), ("measured_idle", [plainIdle, idle[1]]),
                          ("tokens_per_s", [plainRate, throughput[1]])]
        return outcome
    }
}
