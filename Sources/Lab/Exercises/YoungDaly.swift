import Engine
import Foundation
import Workflows

/// Failures over a simulated week of a 16,384-GPU job, and the checkpoint interval that wastes least.
struct YoungDaly: Exercise {
    let id = "young-daly"
    let chapter = "Fault Tolerance"
    let title = "A week on 16,384 GPUs: cluster MTBF, the Young–Daly interval and goodput"
    let minutes = 35
    let needs = "simulator"
    let background = """
        A job fails when any of its parts does: with N_i parts of kind i failing independently with mean time
        to failure MTTF_i, the cluster's mean time between failures is
          MTBF = 1 / Σ_i (N_i / MTTF_i)
        Checkpointing every τ costs δ (the save's stall) per interval; a failure loses on average τ/2 of work
        plus detection, rescheduling and reload. The waste is minimal near the Young–Daly interval
          τ* = √(2 · δ · MTBF)
        fleet's reliability model draws failures from each part over a simulated week, rolls the job back to
        the newest checkpoint at each, and reports goodput = useful time ÷ wall time.
        """
    let questions = [
        Question("mtbf-hours", "The cluster's MTBF in hours (the parts are listed by `fleet lab show young-daly`)", unit: "h", tolerance: 0.03,
                 hint: "Sum N/MTTF over every part (per-GPU parts × 16,384, per-node × 2,048), then invert."),
        Question("young-daly-minutes", "The Young–Daly checkpoint interval in minutes", unit: "min", tolerance: 0.05,
                 hint: "√(2 · δ · MTBF), δ and MTBF in the same unit."),
        Question("goodput", "Goodput over the week at that interval", unit: "fraction", tolerance: 0, absolute: 0.03,
                 hint: "Each failure costs about τ/2 of rework plus detection, rescheduling and reload; stalls cost δ/τ."),
    ]
    let stretch = "Switch to asynchronous checkpoints (reliability.checkpointing: async): δ becomes the snapshot stall. How short does τ* get, and what limits it then?"

    static let yaml = """
        name: llama-405b on 16384 H100, one week
        cluster: {device: H100, nodes: 2048, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        fabric: {topology: fat-tree, radix: 64, tiers: 3, link: {bandwidth: 400 Gb/s, latency: 1 us}}
        storage: {aggregate: 2 TB/s, per_client: 2 GB/s, latency: 10 ms, snapshot: 25 GB/s}
        workload: {model: llama-405b, batch: 2048, sequence: 8192, efficiency: 0.5}
        layout: {dp: 128, tp: 8, pp: 16, microbatches: 16, schedule: 1f1b, zero: 1, recompute: full}
        reliability:
          duration: 7 d
          checkpoint_interval: auto
          checkpointing: sync
          detection: 2 min
          rescheduling: 8 min
          repair: 6 h
          spares: 16
          seed: 1
          components:
            - {name: gpu, per: gpu, mttf: 143000 h}
            - {name: hbm, per: gpu, mttf: 295000 h}
            - {name: host, per: node, mttf: 30900 h}
            - {name: nic, per: gpu, mttf: 3000000 h}
            - {name: psu, per: node, mttf: 1300000 h}
            - {name: switch, count: 1280, mttf: 47000 h}
            - {name: storage, count: 1, mttf: 5000 h}
        """

    func commands(quick: Bool) -> [String] { ["fleet simulate scenarios/llama-405b-16k-reliability.yaml --plot goodput.svg"] }

    func model() throws -> (ReliabilityModel, Scenario) {
        let (scenario, step) = try Simulated.step(Self.yaml, name: "young-daly")
        guard let settings = scenario.reliability else { throw LabError("the scenario lost its reliability section") }
        return (scenario.reliabilityModel(settings, step: step), scenario)
    }

    func givens() throws -> [String] {
        let (model, scenario) = try model()
        return ["checkpoint: \(Show.bytes(scenario.checkpointBytes)) written by the job in δ = \(String(format: "%.1f", model.checkpointStall)) s (synchronous)",
                "parts: " + model.components.map { "\($0.count) × \($0.name) (MTTF \(Int($0.mttf / 3600)) h)" }.joined(separator: ", ")]
    }

    func solve() throws -> [String: Double] {
        let (model, _) = try model()
        return answers(model, atYoungDaly: model.simulate())
    }

    func answers(_ model: ReliabilityModel, atYoungDaly: ReliabilityReport) -> [String: Double] {
        ["mtbf-hours": model.clusterMTBF / 3600, "young-daly-minutes": model.youngDalyInterval / 60, "goodput": atYoungDaly.goodput]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let (model, _) = try model()
        let intervals = [5.0, 10, 15, 20, 30, 45, 60, 90, 120].map { $0 * 60 }
        let sweep = model.sweep(intervals: intervals)
        let atYoungDaly = model.simulate()
        var outcome = LabOutcome()
        let table = Table(columns: [("interval", 9), ("goodput", 8), ("failures", 9), ("rework", 9), ("stalls", 9), ("restarts", 9)])
        outcome.table = [String(format: "llama-405b on 16,384 H100 for 7 days: MTBF %.2f h, δ %.1f s, Young–Daly %.1f min",
                                model.clusterMTBF / 3600, model.checkpointStall, model.youngDalyInterval / 60), table.header()]
        for r in sweep.reports + [atYoungDaly] {
            outcome.table.append(table.row([String(format: "%.0f min", r.interval / 60), Show.pct(r.goodput), "\(r.failures)",
                                            Units.duration(r.rework), Units.duration(r.checkpointStalls), Units.duration(r.restart)]))
        }
        outcome.table.append("(the last row is the Young–Daly interval)")
        outcome.figures = [("goodput.svg", SVGChart.lines(title: "goodput over a week by checkpoint interval", unit: "goodput",
                                                          labels: sweep.reports.map { String(format: "%.0f min", $0.interval / 60) },
                                                          series: [("simulated week", "#4878a8", sweep.reports.map(\.goodput))]))]
        outcome.answers = answers(model, atYoungDaly: atYoungDaly)
        outcome.record = [("intervals_s", intervals), ("goodput", sweep.reports.map(\.goodput)), ("young_daly_s", model.youngDalyInterval)]
        return outcome
    }
}
