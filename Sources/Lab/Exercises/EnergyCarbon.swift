import Engine
import Foundation
import Workflows

/// A frontier-style training run's energy, carbon and water, and where the cluster sits.
struct EnergyCarbon: Exercise {
    let id = "energy-carbon"
    let chapter = "Sustainable AI"
    let title = "Energy, carbon and water of a 15 T-token run — and what the grid changes"
    let minutes = 30
    let needs = "simulator"
    let background = """
        A device draws between its idle power and its TDP depending on how busy it is:
          P_device ≈ P_idle + (TDP − P_idle) · u      (u: the share of the step it computes)
        IT power adds the hosts (CPUs, memory, NICs, fans) and the fabric's switches; the facility adds
        cooling and power conversion: facility energy = IT energy × PUE. Carbon = facility energy × the
        grid's intensity (gCO2e/kWh); water = IT energy × WUE (litres per kWh). A whole run's energy is its
        power times its wall time — a token budget ÷ tokens per step × step time (÷ goodput if it fails).
        Setup: Llama 3 70B on 8,192 H100s (a full 3-tier fat-tree of radix-32 switches), tp8 · pp16 · dp64,
        1,024 sequences of 8,192 tokens per step, 15 T tokens; idle 100 W, 2 kW per node, 750 W per switch,
        PUE 1.2, WUE 1.8 L/kWh.
        """
    let questions = [
        Question("switches", "Switches in a full 3-tier fat-tree of radix-32 switches", unit: "switches", hint: "5k²/4: k²/2 leaf, k²/2 aggregation, k²/4 core."),
        Question("steps", "Steps to train on 15 T tokens", unit: "steps", tolerance: 0.001, hint: "tokens ÷ (batch · sequence), rounded up."),
        Question("facility-gwh", "Facility energy of the whole run", unit: "GWh", tolerance: 0.1,
                 hint: "IT power × wall time × PUE; the simulator gives u from the step's compute share."),
        Question("carbon-ratio-us-france", "Carbon of the run on the US grid ÷ on the French grid", unit: "ratio", tolerance: 0.01,
                 hint: "The energy is the same; only the intensity changes (presets: us 370, france 55 g/kWh)."),
    ]
    let stretch = "Halve the micro-batch count (more bubble, lower u): does the run's energy go up or down, and why is per-device power not the whole story?"

    static func yaml(grid: String) -> String {
        """
        name: llama-70b on 8,192 H100
        cluster: {device: H100, nodes: 1024, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        fabric: {topology: fat-tree, radix: 32, tiers: 3, link: {bandwidth: 400 Gb/s, latency: 1 us}}
        workload: {model: llama-70b, batch: 1024, sequence: 8192, efficiency: 0.5, tokens: 15e12}
        layout: {dp: 64, tp: 8, pp: 16, microbatches: 16, schedule: 1f1b, zero: 1, recompute: full}
        energy: {device_idle: 100 W, node_overhead: 2 kW, switch_power: 750 W, pue: 1.2, grid: \(grid), wue: 1.8 L/kWh}
        """
    }

    func commands(quick: Bool) -> [String] { ["fleet simulate scenarios/llama-70b-fat-tree-8k.yaml", "  (then grid: france)"] }

    func estimates() throws -> [(grid: String, scenario: Scenario, estimate: RunEstimate)] {
        try ["us", "france", "sweden", "poland"].map { grid in
            let (s, r) = try Simulated.step(Self.yaml(grid: grid), name: "energy-carbon \(grid)")
            return (grid, s, RunEstimate(s, r))
        }
    }

    func solve() throws -> [String: Double] { try answers(try estimates()) }

    func answers(_ e: [(grid: String, scenario: Scenario, estimate: RunEstimate)]) throws -> [String: Double] {
        guard let run = e[0].estimate.run, let france = e[1].estimate.run, let time = e[0].estimate.time else { throw LabError("the scenario lost its budget") }
        return ["switches": Double(e[0].estimate.fabric.switches), "steps": Double(time.steps), "facility-gwh": run.facilityKWh / 1e6,
                "carbon-ratio-us-france": run.carbonKg / france.carbonKg]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let e = try estimates()
        var outcome = LabOutcome()
        outcome.table = RunEstimateText.lines(e[0].scenario, e[0].estimate)
        let table = Table(columns: [("grid", 8), ("g/kWh", 6), ("CO2e (t)", 10)])
        outcome.table += ["", "the same run on other grids:", table.header()]
        for (grid, s, estimate) in e {
            outcome.table.append(table.row([grid, String(format: "%.0f", s.energy?.gridIntensity ?? 0), String(format: "%.0f", (estimate.run?.carbonKg ?? 0) / 1000)]))
        }
        outcome.figures = [("carbon.svg", SVGChart.bars(title: "Llama 3 70B, 15 T tokens: operational carbon by grid", unit: "t CO2e",
                                                        e.map { ($0.grid, ($0.estimate.run?.carbonKg ?? 0) / 1000) }))]
        outcome.answers = try answers(e)
        outcome.record = [("grids", e.map(\.grid)), ("carbon_kg", e.map { $0.estimate.run?.carbonKg ?? 0 })]
        return outcome
    }
}
