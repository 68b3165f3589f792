import Foundation
import Workflows
import Workload

/// Data parallelism on real ranks: the gradient bytes each step moves, and the speed-up.
struct DataParallelScaling: Exercise {
    let id = "dp-scaling"
    let chapter = "Data Parallelism"
    let title = "Data-parallel scaling on real ranks: gradient traffic and weak-scaling speed-up"
    let minutes = 30
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Each data-parallel replica computes gradients for its share of the batch, then the replicas all-reduce
        them: every rank contributes all P parameters' gradients (4 bytes each in fp32), in buckets that start
        during the backward pass. A ring all-reduce makes each rank send 2(n−1)/n of those bytes.
        Weak scaling keeps the batch per replica fixed (n replicas, n× the batch): ideal speed-up n. Strong
        scaling keeps the global batch: each replica's share shrinks and communication weighs more.
        The run trains gpt-tiny (842,496 parameters) with one replica and with two (and four in the full run),
        8 sequences of 128 tokens per replica.
        """
    let questions = [
        Question("gradient-bytes", "Gradient bytes each rank all-reduces per step (gpt-tiny, fp32)", unit: "bytes",
                 hint: "Every parameter's gradient, 4 bytes each; `fleet plan gpt-tiny --dp 2` lists the buckets."),
        Question("ring-sent-dp4", "Bytes each rank sends for that all-reduce over 4 ranks with a ring", unit: "bytes",
                 hint: "2(n−1)/n of the gradient bytes."),
        Question("speedup-dp2", "Measured weak-scaling speed-up of dp2 over one process (tokens/s ratio)", unit: "ratio",
                 tolerance: 0.3, measured: true, hint: "Two ranks share this machine's cores, memory bandwidth and the transport's copies."),
    ]
    let stretch = "Rerun dp2 with --bucket 64KiB and --bucket 64MiB: how does the exposed data-parallel time (dp exposed) change, and why is there a best bucket size?"

    var parameters: Double { Double(ModelCatalog.gptTiny.parameterCount) }

    func layouts(_ quick: Bool) -> [Int] { quick ? [1, 2] : [1, 2, 4] }

    func arguments(dp: Int, quick: Bool) -> [String] {
        ["gpt-tiny", "--dp", "\(dp)", "--batch", "\(8 * dp)", "--steps", quick ? "12" : "40", "--log-every", "1000"]
    }

    func commands(quick: Bool) -> [String] { layouts(quick).map { "fleet train " + arguments(dp: $0, quick: quick).joined(separator: " ") + " --json" } }

    func solve() throws -> [String: Double] {
        ["gradient-bytes": parameters * 4, "ring-sent-dp4": 2 * 3 / 4 * parameters * 4]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        var rates: [Double] = [], exposed: [Double] = [], bytes: [Double] = []
        for dp in layouts(settings.quick) {
            settings.progress("training gpt-tiny with dp\(dp)…")
            let run = try FleetChild.train(arguments(dp: dp, quick: settings.quick), in: settings.directory, name: "dp\(dp)")
            rates.append(FleetChild.median(run.steps, "tokens_per_s", skip: 2))
            exposed.append(FleetChild.median(run.steps, "dp_exposed_s", skip: 2))
            bytes.append(FleetChild.median(run.steps, "dp_bytes", skip: 0))
        }
        let table = Table(columns: [("layout", 7), ("tokens/s", 10), ("speed-up", 9), ("ideal", 6), ("dp bytes/step", 14), ("dp exposed", 11)])
        outcome.table = ["gpt-tiny, 8 sequences × 128 tokens per replica (weak scaling), median over steps", table.header()]
        for (i, dp) in layouts(settings.quick).enumerated() {
            outcome.table.append(table.row(["dp\(dp)", String(format: "%.0f", rates[i]), String(format: "%.2f×", rates[i] / rates[0]), "\(dp)×",
                                            dp == 1 ? "—" : Show.bytes(bytes[i]), dp == 1 ? "—" : Show.ms(exposed[i])]))
        }
        if bytes.count > 1, bytes[1] != parameters * 4 {
            outcome.notes.append("the run all-reduced \(Show.num(bytes[1])) bytes per step, not the \(Show.num(parameters * 4)) the plan says")
        }
        outcome.figures = [("scaling.svg", SVGChart.lines(title: "gpt-tiny weak scaling on this machine", unit: "tokens/s",
                                                          labels: layouts(settings.quick).map { "dp\($0)" },
                                                          series: [("measured", "#4878a8", rates),
                                                                   ("ideal", "#aaaaaa", layouts(settings.quick).map { rates[0] * Double($0) })]))]
        outcome.answers = try solve().merging(["speedup-dp2": rates[1] / rates[0]]) { a, _ in a }
        outcome.record = [("tokens_per_s", rates), ("dp_bytes", bytes), ("dp_exposed_s", exposed)]
        return outcome
    }
}
