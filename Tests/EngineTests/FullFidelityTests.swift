import Engine
import Parallelism
import Workload
import XCTest

/// Full fidelity (`runEveryPipeline`): every pipeline simulated on its own GPUs, devices and
/// routes, against the reductions that stand for it — the one-pipeline step of a uniform
/// fleet and the pipelines-that-differ step of an uneven one.
final class FullFidelityTests: XCTestCase {
    /// 16 GPUs in 4 nodes of 4 on one switch, dp2·tp2·pp4, with links slow enough that rings and messages count.
    func fleet(_ fidelity: Fidelity) -> Scenario {
        let nvlink = Link(bandwidth: .gigabytesPerSecond(450), latency: SimTime(seconds: 2e-6))
        let nic = Link(bandwidth: .gigabitsPerSecond(100), latency: SimTime(seconds: 5e-6))
        var scenario = Scenario(name: "sixteen", device: DeviceCatalog.h100, nodes: 4, gpusPerNode: 4,
                                topology: .fatTree(radix: 4, tiers: 2, oversubscription: 1), scaleUp: nvlink, scaleOut: nic,
                                model: ModelCatalog.llama8B, batch: 16, sequence: 2048, layout: ParallelLayout(dp: 2, tp: 2, pp: 4, microbatches: 8))
        scenario.fidelity = fidelity
        return scenario
    }

    /// A uniform fleet: every pipeline takes the same events and reproduces the one-pipeline step exactly.
    func testEveryPipelineOfAUniformFleetReproducesTheReducedStep() {
        for fidelity in Fidelity.allCases {
            let scenario = fleet(fidelity)
            let reduced = StepSimulator(scenario: scenario).run(), full = StepSimulator(scenario: scenario).runEveryPipeline()
            XCTAssertEqual(full.stepTime, reduced.stepTime, "\(fidelity)")
            XCTAssertEqual(full.breakdown, reduced.breakdown, "\(fidelity)")
            XCTAssertEqual(full.bubbleFraction, reduced.bubbleFraction, "\(fidelity)")
            XCTAssertEqual(full.spans, reduced.spans, "\(fidelity): the reported pipeline's timeline")
            XCTAssertEqual(full.busiestLinks, reduced.busiestLinks, "\(fidelity)")
            XCTAssertEqual(full.stages, reduced.stages, "\(fidelity)")
            XCTAssertEqual(full.events, 4 * reduced.events, "\(fidelity): all dp·tp = 4 pipelines were simulated")
            XCTAssertTrue(full.reductions.hasPrefix("full fidelity: all 4 pipelines"), full.reductions)
        }
    }

    /// An uneven fleet: simulating every pipeline finds the same slowest one, rank and critical
    /// path as the reduction that simulates only those holding an asymmetric GPU.
    func testEveryPipelineOfAnUnevenFleetFindsWhatTheReductionFinds() {
        var cases: [(String, Asymmetry)] = []
        var slow = Asymmetry(); slow.slowNodes = [2: 1.5]; cases.append(("slow node", slow))
        var nic = Asymmetry(); nic.degradedNodes = [1: 0.1]; cases.append(("degraded NIC", nic))
        var mixed = Asymmetry(); mixed.groups = [Asymmetry.DeviceGroup(nodes: 3...3, device: DeviceCatalog.a100)]; cases.append(("A100 node", mixed))
        var stragglers = Asymmetry(); stragglers.stragglers = Asymmetry.Stragglers(fraction: 0.2, factor: 1.3, seed: 7); cases.append(("stragglers", stragglers))
        for fidelity in Fidelity.allCases {
            for (name, asymmetry) in cases {
                var scenario = fleet(fidelity)
                scenario.asymmetry = asymmetry
                let reduced = StepSimulator(scenario: scenario).run(), full = StepSimulator(scenario: scenario).runEveryPipeline()
                let uniform = StepSimulator(scenario: fleet(fidelity)).run()
                XCTAssertGreaterThan(full.stepTime, uniform.stepTime, "\(fidelity), \(name): it slows the step")
                XCTAssertEqual(full.stepTime, reduced.stepTime, "\(fidelity), \(name)")
                XCTAssertEqual(full.slowestRank, reduced.slowestRank, "\(fidelity), \(name)")
                XCTAssertEqual(full.criticalPath, reduced.criticalPath, "\(fidelity), \(name)")
                XCTAssertEqual(full.elementDelays, reduced.elementDelays, "\(fidelity), \(name)")
                XCTAssertGreaterThanOrEqual(full.events, reduced.events, "\(fidelity), \(name)")
            }
        }
    }
}
