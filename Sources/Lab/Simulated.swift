import Engine
import Foundation
import Workflows

/// The simulator as an exercise uses it: scenarios written as YAML (the same text a student
/// could save and pass to `fleet simulate`), read with the same checks, simulated one step.
enum Simulated {
    /// A cluster of `nodes` × 8 H100 on a 2-tier fat-tree with 400 Gb/s links.
    static func cluster(nodes: Int, oversubscription: Double = 1, tiers: Int = 2) -> String {
        """
        cluster: {device: H100, nodes: \(nodes), gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        fabric: {topology: fat-tree, radix: 64, tiers: \(tiers), oversubscription: \(oversubscription), link: {bandwidth: 400 Gb/s, latency: 1 us}}
        """
    }

    /// The scenario `yaml` describes (one point).
    static func scenario(_ yaml: String, name: String) throws -> Scenario {
        let sweep = try ScenarioReader(path: name, text: yaml).read()
        guard let point = sweep.points.first else { throw LabError("\(name): no scenario") }
        return try point.scenario.get()
    }

    /// One simulated step of `scenario`; a step that cannot run is an error.
    static func step(_ scenario: Scenario) throws -> StepReport {
        let report = StepSimulator(scenario: scenario).run()
        if let problem = report.problem { throw LabError("\(scenario.name): \(problem)") }
        return report
    }

    static func step(_ yaml: String, name: String) throws -> (Scenario, StepReport) {
        let s = try scenario(yaml, name: name)
        return (s, try step(s))
    }
}

/// Formatting shared by the exercises' tables.
enum Show {
    static func bytes(_ value: Double) -> String { Units.bytes(value) }
    static func ms(_ seconds: Double) -> String { String(format: "%.2f ms", seconds * 1000) }
    static func pct(_ fraction: Double) -> String { String(format: "%.1f %%", fraction * 100) }
    static func num(_ value: Double) -> String { Grade.format(value) }
}
