import Foundation
import Parallelism
import Workflows

/// The pipeline bubble: closed form, fleet's schedule checker, and real pp2 ranks waiting.
struct PipelineBubble: Exercise {
    let id = "pipeline-bubble"
    let chapter = "Pipeline Parallelism"
    let title = "Pipeline bubbles: (p − 1)/(m + p − 1) against a real two-stage pipeline"
    let minutes = 35
    let needs = "worker processes (ZeroMQ)"
    let background = """
        With p stages and m micro-batches, each stage idles while the pipeline fills and drains. With a
        backward pass twice a forward, GPipe and 1F1B both leave the bubble fraction
          bubble = (p − 1) / (m + p − 1)
        of the step. They differ in memory: GPipe runs all m forwards first and holds m micro-batches'
        activations; 1F1B starts backwards as soon as it can and holds at most p − s on stage s.
        fleet's schedule checker executes the schedule as data (forward 1, backward 2 time units) and reports
        the bubble and the in-flight activations; the run measures how much of a real pp2 rank's step is not
        compute (1 − compute ÷ step): the bubble plus the messages' own time.
        """
    let questions = [
        Question("bubble-p4-m8", "Bubble fraction with 4 stages and 8 micro-batches", unit: "fraction", hint: "(p − 1)/(m + p − 1)."),
        Question("bubble-p2-m4", "Bubble fraction with 2 stages and 4 micro-batches", unit: "fraction", hint: "(p − 1)/(m + p − 1)."),
        Question("inflight-gpipe-p4-m8", "Micro-batches whose activations stage 0 holds at once under GPipe (p = 4, m = 8)", unit: "micro-batches",
                 hint: "All forwards run before any backward."),
        Question("inflight-1f1b-p4-m8", "The same under 1F1B", unit: "micro-batches", hint: "Stage s holds at most p − s."),
    ]
    let stretch = "Interleaved 1F1B (virtual stages V) shrinks the bubble to (p − 1)/(V·m + p − 1): what does it cost in messages, and why must m be a multiple of p?"

    func microbatches(_ quick: Bool) -> [Int] { quick ? [1, 2, 4] : [1, 2, 4, 8] }

    func arguments(m: Int, quick: Bool) -> [String] {
        ["gpt-tiny", "--pp", "2", "--microbatches", "\(m)", "--batch", "16", "--seq", "64", "--steps", quick ? "10" : "30", "--log-every", "1000"]
    }

    func commands(quick: Bool) -> [String] {
        ["fleet plan gpt-tiny --pp 4 --microbatches 8 --schedule gpipe", "fleet plan gpt-tiny --pp 4 --microbatches 8 --schedule 1f1b"]
            + microbatches(quick).map { "fleet train " + arguments(m: $0, quick: quick).joined(separator: " ") + " --json" }
    }

    func report(_ kind: PipelineSchedule.Kind, p: Int, m: Int) throws -> ScheduleReport {
        try PipelineSchedule(kind: kind, stages: p, microbatches: m).check()
    }

    func solve() throws -> [String: Double] {
        ["bubble-p4-m8": try report(.oneFOneB, p: 4, m: 8).bubbleFraction, "bubble-p2-m4": try report(.oneFOneB, p: 2, m: 4).bubbleFraction,
         "inflight-gpipe-p4-m8": Double(try report(.gpipe, p: 4, m: 8).peakInFlightActivations[0]),
         "inflight-1f1b-p4-m8": Double(try report(.oneFOneB, p: 4, m: 8).peakInFlightActivations[0])]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var predicted: [Double] = [], measured: [Double] = []
        for m in microbatches(settings.quick) {
            settings.progress("training gpt-tiny with pp2 and \(m) micro-batch(es)…")
            let run = try FleetChild.train(arguments(m: m, quick: settings.quick), in: settings.directory, name: "pp2-m\(m)")
            predicted.append(try report(.oneFOneB, p: 2, m: m).bubbleFraction)
            // Idle is everything but compute: waits for activations and gradients, and (pp without dp) the
            // tied-embedding sum, where the first stage's wait for the last one's backward also shows up.
            measured.append(1 - FleetChild.median(run.steps, "compute_s", skip: 2) / FleetChild.median(run.steps, "step_s", skip: 2))
        }
        let table = Table(columns: [("micro-batches", 13), ("closed form", 12), ("schedule", 9), ("measured idle", 14)])
        outcome.table = ["gpt-tiny pp2 (1F1B), 16 × 64 tokens: rank 0's idle share of the step (1 − compute ÷ step, medians)", table.header()]
        for (i, m) in microbatches(settings.quick).enumerated() {
            outcome.table.append(table.row(["\(m)", Show.pct(1.0 / Double(m + 1)), Show.pct(predicted[i]), Show.pct(measured[i])]))
        }
        let labels = microbatches(settings.quick).map { "m=\($0)" }
        outcome.figures = [("bubble.svg", SVGChart.lines(title: "pp2 bubble: schedule vs measured waiting", unit: "fraction of the step",
                                                         labels: labels, series: [("schedule (p−1)/(m+p−1)", "#4878a8", predicted),
                                                                                  ("measured idle (rank 0)", "#d08040", measured)])),
                           ("timeline-p4-m8.svg", try timeline(report(.oneFOneB, p: 4, m: 8), title: "1F1B, p = 4, m = 8"))]
        outcome.answers = try solve()
        outcome.record = [("microbatches", microbatches(settings.quick).map(Double.init)), ("predicted_bubble", predicted), ("measured_wait", measured)]
        return outcome
    }

    /// The schedule as a Gantt chart: a row per stage, forwards blue and backwards orange.
    func timeline(_ report: ScheduleReport, title: String) -> String {
        let stages = (report.timeline.map(\.stage).max() ?? 0) + 1
        let unit = 640.0 / report.makespan, left = 70.0
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + 640 + 20))\" height=\"\(60 + 30 * stages + 30)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"\(Int(left + 320))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(title): bubble \(String(format: "%.1f %%", report.bubbleFraction * 100))</text>\n"
        for s in 0..<stages { svg += "<text x=\"\(Int(left - 8))\" y=\"\(60 + 30 * s + 16)\" text-anchor=\"end\">stage \(s)</text>\n" }
        for span in report.timeline {
            let forward = span.action.hasPrefix("F")
            svg += String(format: "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"22\" fill=\"%@\" stroke=\"white\"><title>%@</title></rect>\n",
                          left + span.start * unit, 60 + 30 * span.stage, (span.end - span.start) * unit, forward ? "#4878a8" : "#d08040", span.action)
            svg += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"white\">%@</text>\n",
                          left + (span.start + span.end) / 2 * unit, 60 + 30 * span.stage + 15, span.action)
        }
        svg += "<text x=\"\(Int(left))\" y=\"\(60 + 30 * stages + 20)\">time → (forward = 1, backward = 2 units); white gaps are the bubble</text>\n"
        return svg + "</svg>\n"
    }
}
