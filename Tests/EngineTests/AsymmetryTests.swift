import Engine
import Parallelism
import Workload
import XCTest

/// Asymmetric fleets: a slow node, a degraded NIC, mixed devices and stragglers priced rank by
/// rank, exactly the pipelines that hold them simulated, and the step's critical path named.
final class AsymmetryTests: XCTestCase {
    /// p stages on p single-GPU nodes, free links, a model big enough that compute dominates the optimizer.
    func pipeline(stages: Int, microbatches: Int, device: Device = DeviceCatalog.h100) -> Scenario {
        let free = Link(bandwidth: Bandwidth(bytesPerSecond: 1e30), latency: .zero)
        let model = ModelSpec(name: "uniform", vocabulary: 1, context: 2048, layers: 8, heads: 16, kvHeads: 16, dModel: 2048, mlpHidden: 8192,
                              gatedMLP: false, tiedEmbeddings: true, learnedPositions: false, biases: false)
        var scenario = Scenario(name: "uniform", device: device, nodes: stages, gpusPerNode: 1, topology: .singleSwitch,
                                scaleUp: free, scaleOut: free, model: model, batch: 4 * microbatches, sequence: 2048,
                                layout: ParallelLayout(pp: stages, microbatches: microbatches))
        scenario.efficiency = 1
        return scenario
    }

    /// Compute time of each stage, from the step's spans.
    func compute(_ report: StepReport, stages: Int) -> [Double] {
        var busy = Array(repeating: 0.0, count: stages)
        for span in report.spans where span.lane == "compute" && !span.name.hasPrefix("optimizer") { busy[span.stage] += (span.end - span.start).seconds }
        return busy
    }

    func testNoAsymmetryIsTheSymmetricStepInEveryMode() throws {
        let text = try String(contentsOfFile: EngineTests.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)
        let plain = try ScenarioReader(path: "a.yaml", text: text).read().base
        let empty = try ScenarioReader(path: "a.yaml", text: text.replacingOccurrences(of: "  gpus_per_node: 8", with: "  gpus_per_node: 8\n  slow_nodes: []")).read().base
        XCTAssertTrue(empty.asymmetry.isEmpty)
        let (a, b) = (StepSimulator(scenario: plain).run(), StepSimulator(scenario: empty).run())
        XCTAssertEqual(a.stepTime, b.stepTime)
        XCTAssertEqual(a.spans, b.spans)
        XCTAssertEqual(a.reductions, b.reductions)
        XCTAssertNil(a.slowestRank)
        // Every pipeline simulated gives the one-pipeline step when nothing differs.
        let small = pipeline(stages: 2, microbatches: 4)
        XCTAssertEqual(StepSimulator(scenario: small).runEveryPipeline().stepTime, StepSimulator(scenario: small).run().stepTime)
    }

    /// Stage k F× slower in a compute-bound 1F1B pipeline of p stages and m micro-batches (f, b:
    /// a uniform stage's forward and backward): micro-batch 0 reaches it after k forwards, its
    /// m·F·(f + b) of passes follow, k backwards drain; its first backward waits for the p − 1 − k
    /// stages after it unless its warm-up forwards outlast them: (p − 1 − k)·max(0, f + b − F·f).
    func testASlowNodeSlowsItsPipelineByTheClosedForm() {
        let (p, m, k, factor) = (4, 8, 2, 2.0)
        let uniform = pipeline(stages: p, microbatches: m)
        let symmetric = StepSimulator(scenario: uniform).run()
        func duration(_ name: String) -> Double {
            symmetric.spans.first { $0.stage == k && $0.name == name }.map { ($0.end - $0.start).seconds } ?? 0
        }
        let (f, b) = (duration("forward 0"), duration("backward 0"))
        var slow = uniform
        slow.asymmetry.slowNodes = [k: factor]
        let report = StepSimulator(scenario: slow).run()
        let passes = report.stepTime.seconds - report.breakdown.optimizer.seconds
        let closedForm = Double(k) * (f + b) + Double(m) * factor * (f + b) + Double(p - 1 - k) * max(0, f + b - factor * f)
        XCTAssertEqual(passes / closedForm, 1, accuracy: 2e-3)
        // The uniform pipeline against its own closed form, (f + b)·(m + p − 1).
        XCTAssertEqual((symmetric.stepTime - symmetric.breakdown.optimizer).seconds / ((f + b) * Double(m + p - 1)), 1, accuracy: 2e-3)
        XCTAssertEqual(compute(report, stages: p)[2] / compute(symmetric, stages: p)[2], factor, accuracy: 1e-9)
        XCTAssertEqual(report.slowestRank, k)
        XCTAssertEqual(report.criticalPath, "pipeline (dp 0, tp 0), stage 2: rank 2 on node 2 computes 2× slower")
        XCTAssertEqual(report.elementDelays.map(\.element), ["node 2 computes 2× slower"])
        XCTAssertEqual(report.elementDelays[0].delay, report.stepTime - symmetric.stepTime)
    }

    /// A NIC at half its bandwidth doubles a bandwidth-bound ring through it and leaves the
    /// others alone, under both fidelities.
    func testADegradedNICSlowsOnlyTheRingsThroughIt() {
        var fabric = Fabric(gpus: 8, gpusPerNode: 1, topology: .singleSwitch, scaleUp: Link(bandwidth: .gigabytesPerSecond(450), latency: .zero),
                            scaleOut: Link(bandwidth: .gigabytesPerSecond(50), latency: .zero))
        let healthy = fabric
        fabric.degraded = [2: 0.5]
        for network in [{ FlowNetwork(fabric: $0) as NetworkModel }, { AnalyticalNetwork(fabric: $0) as NetworkModel }] {
            let (slow, fast) = (CollectiveModel(network: network(fabric)), CollectiveModel(network: network(healthy)))
            let through = [0, 1, 2, 3], around = [4, 5, 6, 7]
            XCTAssertEqual(slow.time(.all, through, bytes: 1e9, algorithm: .ring).seconds / fast.time(.all, through, bytes: 1e9, algorithm: .ring).seconds, 2, accuracy: 1e-6)
            XCTAssertEqual(slow.time(.all, around, bytes: 1e9, algorithm: .ring), fast.time(.all, around, bytes: 1e9, algorithm: .ring))
        }
    }

    /// Nodes of another device compute at that device's roofline; the rest at the cluster's.
    func testMixedDevicesPriceEachStageWithItsOwnRoofline() {
        var mixed = pipeline(stages: 2, microbatches: 4)
        mixed.asymmetry.groups = [Asymmetry.DeviceGroup(nodes: 1...1, device: DeviceCatalog.a100)]
        let report = StepSimulator(scenario: mixed).run()
        let h100 = StepSimulator(scenario: pipeline(stages: 2, microbatches: 4)).run()
        let a100 = StepSimulator(scenario: pipeline(stages: 2, microbatches: 4, device: DeviceCatalog.a100)).run()
        XCTAssertEqual(compute(report, stages: 2)[0], compute(h100, stages: 2)[0], accuracy: 1e-9)
        XCTAssertEqual(compute(report, stages: 2)[1], compute(a100, stages: 2)[1], accuracy: 1e-9)
        XCTAssertEqual(report.slowestRank, 1)
        XCTAssertTrue(report.criticalPath?.hasSuffix("is a different device (A100)") ?? false, report.criticalPath ?? "")
        // MFU over the fleet's own peak: one H100 and one A100.
        let flops = report.mfu * mixed.fleetPeak * report.stepTime.seconds
        XCTAssertEqual(mixed.fleetPeak, DeviceCatalog.h100.peak(mixed.precision) + DeviceCatalog.a100.peak(mixed.precision))
        XCTAssertEqual(flops, h100.mfu * 2 * DeviceCatalog.h100.peak(mixed.precision) * h100.stepTime.seconds, accuracy: flops * 1e-9, "the same model FLOPs")
        // Memory: each device against the stages its GPUs hold — a small one on stage 1 is named.
        XCTAssertNil(mixed.memoryProblem(report.memoryStages))
        var small = DeviceCatalog.a100
        small.memoryBytes = report.memoryStages[1].total * 0.9
        mixed.asymmetry.groups = [Asymmetry.DeviceGroup(nodes: 1...1, device: small)]
        let problem = mixed.memoryProblem(report.memoryStages) ?? ""
        XCTAssertTrue(problem.contains("on stage 1, more than A100's"), problem)
        small.memoryBytes = report.memoryStages[1].total * 1.1
        mixed.asymmetry.groups = [Asymmetry.DeviceGroup(nodes: 1...1, device: small)]
        XCTAssertNil(mixed.memoryProblem(report.memoryStages), "stage 1 fits the smaller device")
    }

    /// Stragglers by seed: the same devices at any scale, about the fraction asked for.
    func testStragglersAreDrawnBySeed() {
        let stragglers = Asymmetry.Stragglers(fraction: 0.01, factor: 1.5, seed: 3)
        let slowed = (0..<100_000).filter(stragglers.slows)
        XCTAssertEqual(Double(slowed.count), 1000, accuracy: 150)
        XCTAssertEqual((0..<1000).filter(stragglers.slows), slowed.filter { $0 < 1000 })
        XCTAssertNotEqual((0..<100_000).filter(Asymmetry.Stragglers(fraction: 0.01, factor: 1.5, seed: 4).slows), slowed)
    }

    /// Stragglers' factors from a distribution: each GPU's own draw, within its bounds, with the
    /// distribution's mean (uniform) or median (lognormal), the same at any scale.
    func testStragglerFactorsAreDrawnFromTheirDistribution() {
        let gpus = 0..<200_000
        let uniform = Asymmetry.Stragglers(fraction: 1, factor: 1.2, seed: 5, spread: .uniform(max: 2))
        let drawn = gpus.map(uniform.factor(of:))
        XCTAssertTrue(drawn.allSatisfy { (1.2..<2).contains($0) })
        XCTAssertEqual(drawn.reduce(0, +) / Double(drawn.count), 1.6, accuracy: 0.005)
        XCTAssertEqual(Set(drawn.prefix(100)).count, 100, "every straggler its own factor")
        let lognormal = Asymmetry.Stragglers(fraction: 1, factor: 1.5, seed: 5, spread: .lognormal(sigma: 0.3))
        let factors = gpus.map(lognormal.factor(of:)).sorted()
        XCTAssertEqual(factors[factors.count / 2], 1.5, accuracy: 0.01, "the median")
        XCTAssertGreaterThanOrEqual(factors[0], 1, "never faster than the device")
        // log(factor) above the median has the standard deviation σ (the half-normal's √(1 − 2/π)·σ about its mean).
        let upper = factors.suffix(factors.count / 2).map { log($0 / 1.5) }
        let mean = upper.reduce(0, +) / Double(upper.count)
        XCTAssertEqual(mean, 0.3 * (2 / Double.pi).squareRoot(), accuracy: 0.005)
        XCTAssertEqual((0..<1000).map(lognormal.factor(of:)), Array(gpus.map(lognormal.factor(of:)).prefix(1000)))
        // The slowest GPU of a fleet of stragglers sets its step: a wider spread, a slower step.
        var narrow = pipeline(stages: 4, microbatches: 8), wide = narrow
        narrow.asymmetry.stragglers = Asymmetry.Stragglers(fraction: 1, factor: 1.2, seed: 1, spread: .uniform(max: 1.3))
        wide.asymmetry.stragglers = Asymmetry.Stragglers(fraction: 1, factor: 1.2, seed: 1, spread: .uniform(max: 3))
        XCTAssertLessThan(StepSimulator(scenario: narrow).run().stepTime, StepSimulator(scenario: wide).run().stepTime)
    }

    func testAsymmetryKeysAreCheckedWhereTheyStand() throws {
        let good = try String(contentsOfFile: EngineTests.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)
        func error(_ yaml: String) -> String {
            do { _ = try ScenarioReader(path: "s.yaml", text: yaml).read(); return "no error" } catch { return "\(error)" }
        }
        let anchor = "  gpus_per_node:"
        XCTAssertTrue(good.contains(anchor))
        func with(_ lines: String) -> String { good.replacingOccurrences(of: anchor, with: lines + "\n" + anchor) }
        let parsed = try ScenarioReader(path: "s.yaml", text: with("  slow_nodes: [{node: 0, factor: 1.5}]\n  stragglers: {fraction: 0.5, factor: 2, seed: 9}")).read().base
        XCTAssertEqual(parsed.asymmetry.slowNodes, [0: 1.5])
        XCTAssertEqual(parsed.asymmetry.stragglers, Asymmetry.Stragglers(fraction: 0.5, factor: 2, seed: 9))
        XCTAssertTrue(error(with("  slow_nodes: [{node: 9, factor: 1.5}]")).contains("cluster.slow_nodes.node must be a whole number from 0 to"), error(with("  slow_nodes: [{node: 9, factor: 1.5}]")))
        XCTAssertTrue(error(with("  slow_nodes: [{node: 0, factor: 0.5}]")).contains("at least 1"))
        XCTAssertTrue(error(with("  groups: [{nodes: 3-1, device: A100}]")).contains("cluster.groups.nodes must be a node or a range"))
        XCTAssertTrue(error(with("  stragglers: {fraction: 2, factor: 1.5}")).contains("from 0 to 1"))
        let spread = try ScenarioReader(path: "s.yaml", text: with("  stragglers: {fraction: 0.1, factor: 1.2, distribution: lognormal, sigma: 0.4, seed: 2}")).read().base
        XCTAssertEqual(spread.asymmetry.stragglers, Asymmetry.Stragglers(fraction: 0.1, factor: 1.2, seed: 2, spread: .lognormal(sigma: 0.4)))
        XCTAssertTrue(error(with("  stragglers: {fraction: 0.1, factor: 1.2, max: 2}")).contains("cluster.stragglers.max belongs to distribution: uniform"))
        XCTAssertTrue(error(with("  stragglers: {fraction: 0.1, factor: 1.2, distribution: uniform, max: 1.1}")).contains("at least factor"))
        XCTAssertTrue(error(with("  stragglers: {fraction: 0.1, factor: 1.2, distribution: pareto}")).contains("must be fixed, uniform or lognormal"))
        let degraded = good.replacingOccurrences(of: "fabric:\n", with: "fabric:\n  degraded: [{node: 0, factor: 2}]\n")
        XCTAssertNotEqual(degraded, good)
        XCTAssertTrue(error(degraded).contains("fabric.degraded.factor is the share of the NICs' bandwidth left"), error(degraded))
    }
}
