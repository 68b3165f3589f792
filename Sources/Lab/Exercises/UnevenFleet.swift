import Engine
import Foundation
import Parallelism
import Workflows

/// An uneven fleet: one slow stage in a pipeline (closed form against the simulator), a NIC at
/// half rate, a generation of older GPUs — and which of them sets the step.
struct UnevenFleet: Exercise {
    let id = "uneven-fleet"
    let chapter = "Stragglers"
    let title = "An uneven fleet: one slow stage, one slow NIC, older GPUs — who sets the step?"
    let minutes = 30
    let needs = "simulator"
    let background = """
        Synchronous training runs at the pace of its slowest part. In a 1F1B pipeline of p stages and m micro-
        batches with forward f and backward b per stage, a stage k computing F× slower makes the step
          k·(f + b) + m·F·(f + b) + (p − 1 − k)·max(0, f + b − F·f)
        instead of (m + p − 1)·(f + b): micro-batch 0 reaches it after k forwards, its m slow passes follow, k
        backwards drain, and its first backward waits for the stages after it unless its own warm-up outlasts them.
        A ring all-reduce is as fast as its slowest link: one NIC at a fraction of its rate slows every ring
        through it by that fraction, and no other. A roofline-bound pass on another device takes peak ÷ peak
        as long. fleet's simulator prices each rank with its own device and slowdown, simulates exactly the
        pipelines that hold an uneven GPU, and names the critical path and each element's cost.
        """
    let questions = [
        Question("slow-stage-ratio", "Step time ÷ uniform step: p = 4, m = 8, stage k = 2 at F = 2, b = 2·f", unit: "ratio",
                 hint: "Count in units of f: the uniform step is (m + p − 1)·3."),
        Question("half-nic-ring-ratio", "A bandwidth-bound ring all-reduce through one NIC at half rate takes how many times as long?",
                 unit: "ratio", hint: "Each ring step moves the same bytes over every link; the slowest link sets its time."),
        Question("a100-pass-ratio", "A compute-bound bf16 pass on an A100 takes how many times as long as on an H100?", unit: "ratio",
                 hint: "Peak bf16: H100 989 TFLOP/s, A100 312 TFLOP/s."),
        Question("a100-share", "In scenarios/llama-70b-asymmetric.yaml (fleet lab show prints it), the share of the step's added time due to the A100 nodes alone",
                 unit: "fraction", tolerance: 0.1, hint: "Compare the elements' delays; which one sits on the critical path?"),
    ]
    let stretch = "Move the slow node to stage 0 and to the last stage (its node number decides its stage): does the closed form still hold, and why does the warm-up term vanish for F ≥ 3?"

    func commands(quick: Bool) -> [String] {
        ["fleet simulate scenarios/llama-70b-asymmetric.yaml", "fleet simulate scenarios/llama-70b-asymmetric.yaml --json"]
    }

    /// The uneven fleet of scenarios/llama-70b-asymmetric.yaml, its comments left out (a test
    /// holds the two equal), so the exercise runs where the repository is not.
    static let yaml = """
        name: llama-70b on 1,024 H100, not quite uniform
        cluster:
          device: H100
          nodes: 128
          gpus_per_node: 8
          scale_up: {bandwidth: 450 GB/s, latency: 2 us}
          slow_nodes: [{node: 17, factor: 1.3}]
          groups: [{nodes: 120-127, device: A100}]
          stragglers: {fraction: 0.01, factor: 1.2, seed: 11}
        fabric:
          topology: fat-tree
          radix: 16
          tiers: 3
          link: {bandwidth: 400 Gb/s, latency: 1 us}
          degraded: [{node: 30, factor: 0.5}]
        workload: {model: llama-70b, batch: 256, sequence: 8192, efficiency: 0.5}
        layout: {dp: 16, tp: 8, pp: 8, microbatches: 8, schedule: 1f1b, zero: 1, recompute: full}
        """

    func givens() throws -> [String] { ["the uneven fleet (scenarios/llama-70b-asymmetric.yaml):"] + Self.yaml.split(separator: "\n").map { "  " + $0 } }

    func asymmetric() throws -> Scenario { try Simulated.scenario(Self.yaml, name: "llama-70b-asymmetric.yaml") }

    /// A compute-bound 4-stage pipeline, stage 2 optionally F× slower: its step less the update, and the uniform one's f and b.
    func slowStage(factor: Double) throws -> (step: Double, f: Double, b: Double) {
        let yaml = """
            cluster: {device: H100, nodes: 4, gpus_per_node: 1, scale_up: {bandwidth: 1000000 TB/s, latency: 0 us}\(factor > 1 ? ", slow_nodes: [{node: 2, factor: \(factor)}]" : "")}
            fabric: {topology: single-switch, link: {bandwidth: 1000000 TB/s, latency: 0 us}}
            workload: {model: gpt3-175b, batch: 8, sequence: 2048, efficiency: 1}
            layout: {pp: 4, microbatches: 8, schedule: 1f1b}
            """
        let report = try Simulated.step(try Simulated.scenario(yaml, name: "slow-stage.yaml"))
        func duration(_ name: String) -> Double { report.spans.first { $0.stage == 1 && $0.name == name }.map { ($0.end - $0.start).seconds } ?? 0 }
        return ((report.stepTime - report.breakdown.optimizer).seconds, duration("forward 0"), duration("backward 0"))
    }

    func solve() throws -> [String: Double] {
        let (p, m, k, F) = (4.0, 8.0, 2.0, 2.0)
        let closedForm = (k * 3 + m * F * 3 + (p - 1 - k) * max(0, 3 - F)) / ((m + p - 1) * 3)
        var answers = ["slow-stage-ratio": closedForm,
                       "a100-pass-ratio": DeviceCatalog.h100.peak(.bf16) / DeviceCatalog.a100.peak(.bf16)]
        // The ring through a half-rate NIC, on a fabric of 8 single-GPU nodes.
        var fabric = Fabric(gpus: 8, gpusPerNode: 1, topology: .singleSwitch, scaleUp: Link(bandwidth: .gigabytesPerSecond(450), latency: .zero),
                            scaleOut: Link(bandwidth: .gigabytesPerSecond(50), latency: .zero))
        let healthy = CollectiveModel(network: FlowNetwork(fabric: fabric)).time(.all, Array(0..<8), bytes: 1e9, algorithm: .ring)
        fabric.degraded = [3: 0.5]
        answers["half-nic-ring-ratio"] = CollectiveModel(network: FlowNetwork(fabric: fabric)).time(.all, Array(0..<8), bytes: 1e9, algorithm: .ring).seconds / healthy.seconds
        let report = StepSimulator(scenario: try asymmetric()).run()
        let total = report.elementDelays.reduce(0) { $0 + $1.delay.seconds }
        answers["a100-share"] = total > 0 ? (report.elementDelays.first { $0.element.contains("A100") }?.delay.seconds ?? 0) / total : 0
        return answers
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var outcome = LabOutcome()
        settings.progress("simulating a 4-stage pipeline with stage 2 at 1× and 2×…")
        let (uniform, slow) = (try slowStage(factor: 1), try slowStage(factor: 2))
        let (f, b) = (uniform.f, uniform.b)
        let closedForm = 2 * (f + b) + 8 * 2 * (f + b) + 1 * max(0, f + b - 2 * f)
        settings.progress("simulating scenarios/llama-70b-asymmetric.yaml…")
        let s = try asymmetric()
        let report = StepSimulator(scenario: s).run()
        outcome.table = [String(format: "slow stage (gpt3-175b, pp4, m = 8, stage 2 at 2×, b/f = %.2f): simulated %.3f s against the closed form %.3f s (uniform %.3f s)",
                                b / f, slow.step, closedForm, uniform.step),
                         "", "\(s.name): step \(report.stepTime)", "critical path: \(report.criticalPath ?? "—")"]
        let table = Table(columns: [("element", 48), ("delay per step", 15)])
        outcome.table += [table.header()] + report.elementDelays.map { table.row([$0.element, $0.delay.description]) }
        outcome.figures = [("delays.svg", SVGChart.bars(title: "what each uneven element alone adds to the step", unit: "s",
                                                        report.elementDelays.map { ($0.element, $0.delay.seconds) }))]
        outcome.answers = try solve()
        outcome.record = [("slow_stage_simulated_s", slow.step), ("slow_stage_closed_form_s", closedForm), ("uniform_s", uniform.step),
                          ("critical_path", report.criticalPath ?? ""), ("slowest_rank", report.slowestRank ?? -1)]
        return outcome
    }
}
