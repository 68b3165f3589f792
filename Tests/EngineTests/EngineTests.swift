import Engine
import Parallelism
import Workload
import XCTest

/// The simulator held to closed forms (the oracles), to the shared plans, and to itself.
final class EngineTests: XCTestCase {
    /// n GPUs, one per node, on one switch: every route is 2 links of `latency` at `bandwidth`.
    private func star(_ n: Int, bandwidth: Double = 50e9, latency: Double = 1e-6) -> CollectiveModel {
        let link = Link(bandwidth: Bandwidth(bytesPerSecond: bandwidth), latency: SimTime(seconds: latency))
        return CollectiveModel(network: AnalyticalNetwork(fabric: Fabric(gpus: n, gpusPerNode: 1, topology: .singleSwitch, scaleUp: link, scaleOut: link)))
    }

    private func assertClose(_ measured: SimTime, _ expected: Double, _ tolerance: Double = 1e-3, _ message: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(measured.seconds - expected) / expected, tolerance, "\(message): \(measured.seconds) vs \(expected)", file: file, line: line)
    }

    func testCollectivesEqualTheirClosedForms() {
        let bandwidth = 50e9, alpha = 2e-6   // two links of 1 µs
        for n in [2, 3, 4, 8, 16, 64, 1000] {
            let model = star(n), group = Array(0..<n)
            for size in [1e3, 1e6, 256e6] {
                let ring = model.allReduce(group, bytes: size, algorithm: .ring)
                assertClose(ring, 2 * Double(n - 1) / Double(n) * size / bandwidth + 2 * Double(n - 1) * alpha, 1e-3, "ring n=\(n) S=\(size)")
                // Reduce-scatter then all-gather is an all-reduce.
                XCTAssertEqual(model.reduceScatter(group, bytes: size) + model.allGather(group, bytes: size), ring)
                let rounds = Double(Int((Double(n)).log2Ceiling))
                assertClose(model.allReduce(group, bytes: size, algorithm: .tree), 2 * rounds * (alpha + size / bandwidth), 1e-3, "tree n=\(n)")
                if n & (n - 1) == 0 {
                    assertClose(model.allReduce(group, bytes: size, algorithm: .halvingDoubling),
                                2 * log2(Double(n)) * alpha + 2 * Double(n - 1) / Double(n) * size / bandwidth, 1e-3, "halving-doubling n=\(n)")
                }
                assertClose(model.allToAll(group, bytes: size), Double(n - 1) * (alpha + size / Double(n) / bandwidth), 1e-3, "all-to-all n=\(n)")
            }
        }
        assertClose(star(2).pointToPoint(from: 0, to: 1, bytes: 1e6), 2e-6 + 1e6 / 50e9, 1e-6, "point to point")
    }

    func testHierarchicalAllReduceUsesTheFastScaleUpDomain() {
        let nvlink = Link(bandwidth: .gigabytesPerSecond(450), latency: SimTime(seconds: 2e-6))
        let nic = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))
        let fabric = Fabric(gpus: 64, gpusPerNode: 8, topology: .fatTree(radix: 64, tiers: 2, oversubscription: 1), scaleUp: nvlink, scaleOut: nic)
        let model = CollectiveModel(network: AnalyticalNetwork(fabric: fabric)), group = Array(0..<64)
        XCTAssertLessThan(model.allReduce(group, bytes: 1e9, algorithm: .hierarchical), model.allReduce(group, bytes: 1e9, algorithm: .ring))
    }

    func testRoutesHaveTheHopsOfTheirTopology() {
        let link = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))
        // Radix 8: leaves of 4 GPUs, pods of 4 leaves.
        let tree = Fabric(gpus: 128, gpusPerNode: 1, topology: .fatTree(radix: 8, tiers: 3, oversubscription: 1), scaleUp: link, scaleOut: link)
        XCTAssertEqual(tree.route(from: 0, to: 3).count, 2, "same leaf")
        XCTAssertEqual(tree.route(from: 0, to: 4).count, 4, "same pod")
        XCTAssertEqual(tree.route(from: 0, to: 100).count, 6, "across pods")
        XCTAssertNil(tree.problem())
        let spines = Set((0..<64).map { tree.route(from: 0, to: 4, flow: UInt64($0))[1] })
        XCTAssertEqual(spines.count, 4, "ECMP spreads flows over every uplink")
        let torus = Fabric(gpus: 64, gpusPerNode: 1, topology: .torus(dimensions: [8, 8]), scaleUp: link, scaleOut: link)
        XCTAssertEqual(torus.route(from: 0, to: 7).count, 2 + 1, "wrap-around is one hop")
        XCTAssertEqual(torus.route(from: 0, to: 4 + 8 * 4).count, 2 + 8, "4 + 4 hops")
        let nodes = Fabric(gpus: 16, gpusPerNode: 8, topology: .singleSwitch, scaleUp: link, scaleOut: link)
        XCTAssertEqual(nodes.route(from: 0, to: 7), [LinkID(tier: .scaleUp, index: 0)].map { $0 }, "inside a node: the scale-up link")
        XCTAssertEqual(Fabric(gpus: 128, gpusPerNode: 1, topology: .fatTree(radix: 8, tiers: 2, oversubscription: 1), scaleUp: link, scaleOut: link).problem(),
                       "a 2-tier fat-tree of radix 8 holds 32 GPUs, not 128; raise radix or tiers")
    }

    func testSwitchLinksAndSeedsShapeRoutes() {
        let nic = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))
        let slow = Link(bandwidth: .gigabitsPerSecond(100), latency: SimTime(seconds: 3e-6))
        let topology = Fabric.Topology.fatTree(radix: 8, tiers: 2, oversubscription: 1)
        let uniform = AnalyticalNetwork(fabric: Fabric(gpus: 32, gpusPerNode: 1, topology: topology, scaleUp: nic, scaleOut: nic))
        let spines = AnalyticalNetwork(fabric: Fabric(gpus: 32, gpusPerNode: 1, topology: topology, scaleUp: nic, scaleOut: nic, switchLink: slow))
        let sameLeaf = Message(from: 0, to: 1, bytes: 1e6), acrossLeaves = Message(from: 0, to: 20, bytes: 1e6)
        XCTAssertEqual(uniform.time([sameLeaf]), spines.time([sameLeaf]), "no switch-to-switch link on the way")
        XCTAssertEqual(spines.time([acrossLeaves]).seconds, 2e-6 + 6e-6 + 1e6 / 12.5e9, accuracy: 1e-12)
        let a = Fabric(gpus: 32, gpusPerNode: 1, topology: topology, scaleUp: nic, scaleOut: nic, seed: 1)
        let b = Fabric(gpus: 32, gpusPerNode: 1, topology: topology, scaleUp: nic, scaleOut: nic, seed: 2)
        let routesA = (0..<16).map { a.route(from: 0, to: 20, flow: UInt64($0)) }, routesB = (0..<16).map { b.route(from: 0, to: 20, flow: UInt64($0)) }
        XCTAssertNotEqual(routesA, routesB, "another seed, another choice of spines")
        XCTAssertEqual(routesA, (0..<16).map { a.route(from: 0, to: 20, flow: UInt64($0)) }, "the same seed, the same routes")
    }

    func testEventsAtOneInstantRunInSchedulingOrder() {
        var queue = EventQueue<Int>()
        queue.schedule(1, at: SimTime(nanoseconds: 5))
        queue.schedule(2, at: SimTime(nanoseconds: 3))
        queue.schedule(3, at: SimTime(nanoseconds: 5))
        queue.schedule(4, at: SimTime(nanoseconds: 3))
        var order: [Int] = []
        while let event = queue.next() { order.append(event.happening) }
        XCTAssertEqual(order, [2, 4, 1, 3])
        XCTAssertEqual(queue.now, SimTime(nanoseconds: 5))
    }

    /// Uniform stages, free communication: the makespan is (m + p − 1)(F + B), so the bubble is (p − 1)/(m + p − 1).
    private func uniformPipeline(stages: Int, microbatches: Int, schedule: PipelineSchedule.Kind, virtualStages: Int = 1) -> Scenario {
        let free = Link(bandwidth: Bandwidth(bytesPerSecond: 1e30), latency: .zero)
        let model = ModelSpec(name: "uniform", vocabulary: 1, context: 64, layers: 8, heads: 4, kvHeads: 4, dModel: 256, mlpHidden: 1024,
                              gatedMLP: false, tiedEmbeddings: true, learnedPositions: false, biases: false)
        var scenario = Scenario(name: "uniform", device: DeviceCatalog.h100, nodes: stages, gpusPerNode: 1, topology: .singleSwitch,
                                scaleUp: free, scaleOut: free, model: model, batch: microbatches, sequence: 64,
                                layout: ParallelLayout(pp: stages, microbatches: microbatches, schedule: schedule, virtualStages: virtualStages))
        scenario.efficiency = 1
        return scenario
    }

    func testPipelineBubbleMatchesTheScheduleFormula() {
        for (p, m) in [(2, 4), (4, 8), (8, 8), (4, 16)] {
            for kind in PipelineSchedule.Kind.allCases where kind != .interleaved {
                let report = StepSimulator(scenario: uniformPipeline(stages: p, microbatches: m, schedule: kind)).run()
                let b = report.breakdown
                // Compute of one stage over the step, less the optimizer: m·(F + B); the rest is bubble.
                let busy = b.compute.seconds, step = report.stepTime.seconds - b.optimizer.seconds
                let bubble = 1 - busy / step
                XCTAssertEqual(bubble, Double(p - 1) / Double(m + p - 1), accuracy: 2e-3, "\(kind) p=\(p) m=\(m)")
            }
        }
        // Same bubble, but 1F1B holds at most p micro-batches of activations where GPipe holds m.
        let gpipe = StepSimulator(scenario: uniformPipeline(stages: 4, microbatches: 16, schedule: .gpipe)).run()
        let oneFOneB = StepSimulator(scenario: uniformPipeline(stages: 4, microbatches: 16, schedule: .oneFOneB)).run()
        XCTAssertEqual(gpipe.memory.activations / oneFOneB.memory.activations, 16.0 / 4.0, accuracy: 1e-9)
    }

    /// Interleaved 1F1B priced from the same chunks the trainer runs: the idle share is
    /// (p − 1)/(V·m + p − 1), both as the stages' compute leaves it and as `bubble_fraction`.
    func testInterleavedBubbleMatchesTheClosedForm() {
        for (p, v, m) in [(2, 2, 4), (2, 4, 8), (4, 2, 8), (4, 2, 16)] {
            let report = StepSimulator(scenario: uniformPipeline(stages: p, microbatches: m, schedule: .interleaved, virtualStages: v)).run()
            let b = report.breakdown, closedForm = Double(p - 1) / Double(v * m + p - 1)
            let step = report.stepTime.seconds - b.optimizer.seconds
            XCTAssertEqual(1 - b.compute.seconds / step, closedForm, accuracy: 2e-3, "p=\(p) V=\(v) m=\(m)")
            XCTAssertEqual(report.bubbleFraction, closedForm, accuracy: 5e-3, "p=\(p) V=\(v) m=\(m): bubble_fraction")
            // The same layout without interleaving waits V times longer (same compute).
            let plain = StepSimulator(scenario: uniformPipeline(stages: p, microbatches: m, schedule: .oneFOneB)).run()
            XCTAssertEqual(plain.breakdown.pipelineWait.seconds / b.pipelineWait.seconds, Double(v), accuracy: 0.02 * Double(v), "p=\(p) V=\(v) m=\(m)")
            // The price: the first stage holds 2(p − 1) + (V − 1)p + 1 chunk passes of 1/V of its
            // layers each, where 1F1B holds p micro-batches of all of them.
            let passes = Double(min(m * v, 2 * (p - 1) + (v - 1) * p + 1))
            XCTAssertEqual(report.memory.activations / plain.memory.activations, passes / Double(v) / Double(p), accuracy: 1e-9, "p=\(p) V=\(v) m=\(m)")
        }
    }

    func testTheSameScenarioGivesTheSameReport() throws {
        let text = try String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)
        let first = try ScenarioReader(path: "a.yaml", text: text).read().base, second = try ScenarioReader(path: "a.yaml", text: text).read().base
        let (a, b) = (StepSimulator(scenario: first).run(), StepSimulator(scenario: second).run())
        XCTAssertEqual(a.stepTime, b.stepTime)
        XCTAssertEqual(a.spans, b.spans)
        XCTAssertEqual(a.busiestLinks, b.busiestLinks)
        XCTAssertGreaterThan(a.mfu, 0.1)
        XCTAssertLessThan(a.mfu, 0.7)
    }

    static var scenarios: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scenarios").path
    }

    private func error(_ yaml: String) -> String {
        do {
            _ = try ScenarioReader(path: "s.yaml", text: yaml).read()
            return "no error"
        } catch { return "\(error)" }
    }

    func testMalformedScenariosNameTheLineColumnAndWhatIsExpected() throws {
        let good = try String(contentsOfFile: Self.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)
        XCTAssertEqual(error(good), "no error")
        XCTAssertTrue(error("cluster: [unclosed\n").hasPrefix("s.yaml:2:1: YAML syntax"), error("cluster: [unclosed\n"))
        let unknown = good.replacingOccurrences(of: "  efficiency: 0.7", with: "  efficency: 0.7")
        XCTAssertTrue(error(unknown).contains(":17:3: unknown key 'efficency' in workload; did you mean 'efficiency'? expected one of model, batch"), error(unknown))
        let unit = good.replacingOccurrences(of: "{bandwidth: 2 GB/s, latency: 20 us}\nfabric", with: "{bandwidth: 2 GB, latency: 20 us}\nfabric")
        XCTAssertTrue(error(unit).contains("cluster.scale_up.bandwidth must be a number with a unit"), error(unit))
        let model = good.replacingOccurrences(of: "model: gpt-tiny", with: "model: gpt-5")
        XCTAssertTrue(error(model).contains(":13:10: unknown model 'gpt-5'; expected one of gpt-tiny"), error(model))
        let layout = good.replacingOccurrences(of: "{dp: 2, pp: 2,", with: "{dp: 4, pp: 2,")
        XCTAssertTrue(error(layout).contains("dp × tp × pp = 4 × 1 × 2 = 8 GPUs, but the cluster has 1 × 4 = 4"), error(layout))
        let missing = good.replacingOccurrences(of: "  batch: 8\n", with: "")
        XCTAssertTrue(error(missing).contains("workload is missing 'batch'"), error(missing))
    }

    /// `layout.schedule: interleaved` with `virtual_stages` reads into the layout the trainer
    /// runs; chunks that do not divide the layers are refused at the layout.
    func testInterleavedLayoutsReadFromAScenario() throws {
        let good = try String(contentsOfFile: Self.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)
        let from = "layout: {dp: 2, pp: 2, microbatches: 2, schedule: 1f1b}"
        let interleaved = good.replacingOccurrences(of: from, with: "layout: {dp: 2, pp: 2, microbatches: 2, schedule: interleaved}")
        XCTAssertNotEqual(interleaved, good)
        let layout = try ScenarioReader(path: "s.yaml", text: interleaved).read().base.layout
        XCTAssertEqual(layout, ParallelLayout(dp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2))
        let uneven = good.replacingOccurrences(of: from, with: "layout: {dp: 2, pp: 2, microbatches: 2, schedule: interleaved, virtual_stages: 3}")
        XCTAssertTrue(error(uneven).contains("2 × 3 = 6 equal chunks"), error(uneven))
        XCTAssertTrue(error(uneven).hasPrefix("s.yaml:18:"), error(uneven))
    }

    /// Values that used to pass silently — a zero bandwidth read as an infinitely fast link, a
    /// zero bucket that never finished, a straggler share above 1 — are refused where they stand.
    func testValuesOutsideTheirDomainAreRefusedWhereTheyStand() throws {
        let good = try String(contentsOfFile: Self.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)
        let cases: [(String, String, String)] = [
            ("scale_up: {bandwidth: 2 GB/s", "scale_up: {bandwidth: 0 GB/s", ":8:25: cluster.scale_up.bandwidth must be greater than zero (got '0 GB/s')"),
            ("link: {bandwidth: 2 GB/s", "link: {bandwidth: -400 Gb/s", ":11:21: fabric.link.bandwidth must not be negative (got '-400 Gb/s')"),
            ("efficiency: 0.7", "efficiency: 5.5", ":17:15: workload.efficiency is the share of peak compute achieved, above 0 and at most 1"),
            ("layout: {dp: 2, pp: 2, microbatches: 2, schedule: 1f1b}", "layout: {dp: 2, pp: 2, microbatches: 2, schedule: 1f1b}\ncollectives: {bucket: 0 MB}",
             ":19:23: collectives.bucket must be greater than zero (got '0 MB')"),
        ]
        for (from, to, expected) in cases {
            let text = good.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(text, good, from)
            XCTAssertTrue(error(text).contains(expected), "\(to): \(error(text))")
        }
        let reliability = try String(contentsOfFile: Self.scenarios + "/llama-405b-16k-reliability.yaml", encoding: .utf8)
        for (from, to, expected) in [("fraction: 0.00002", "fraction: 2", "stragglers.fraction is a share of the devices, from 0 to 1"),
                                     ("factor: 1.3", "factor: 0.5", "stragglers.factor is how many times slower a straggler runs, at least 1"),
                                     ("duration: 7 d", "duration: 0 d", "reliability.duration must be greater than zero"),
                                     ("checkpoint_interval: auto          # Young–Daly", "checkpoint_interval: 0 s", "reliability.checkpoint_interval must be greater than zero")] {
            let text = reliability.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(text, reliability, from)
            XCTAssertTrue(error(text).contains(expected), "\(to): \(error(text))")
        }
    }

    func testAsyncCheckpointWritesSlowTrainingTrafficOnlyOnASharedFabricUnderFlowFidelity() throws {
        var scenario = try ScenarioReader(path: "s", text: String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)).read().base
        scenario.storage?.perClient = .gigabytesPerSecond(40)
        scenario.checkpointAsync = true
        scenario.storage?.sharedFabric = true
        scenario.fidelity = .flow
        let shared = StepSimulator(scenario: scenario).run().breakdown
        XCTAssertGreaterThan(shared.checkpointContention, .zero)
        XCTAssertGreaterThan(shared.checkpointWrite, .zero)
        scenario.storage?.sharedFabric = false
        XCTAssertEqual(StepSimulator(scenario: scenario).run().breakdown.checkpointContention, .zero, "a separate storage network")
        scenario.storage?.sharedFabric = true
        scenario.fidelity = .analytical
        XCTAssertEqual(StepSimulator(scenario: scenario).run().breakdown.checkpointContention, .zero, "the analytical model has no contention")
    }

    /// The one-pipeline reduction against simulating every pipeline, on sizes where both fit.
    func testTheRepresentativePipelineMatchesSimulatingEveryPipeline() throws {
        var scenario = try ScenarioReader(path: "s", text: String(contentsOfFile: Self.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)).read().base
        for fidelity in Fidelity.allCases {
            scenario.fidelity = fidelity
            let reduced = StepSimulator(scenario: scenario).run(), full = StepSimulator(scenario: scenario).runEveryPipeline()
            XCTAssertEqual(reduced.stepTime, full.stepTime, "\(fidelity): every pipeline of a symmetric fabric does the same")
            XCTAssertTrue(full.reductions.hasPrefix("full fidelity: all 2 pipelines simulated"), full.reductions)
        }
        // On 64 H100s in 8 nodes of a fat-tree, pipelines differ only in which GPUs they use: equal again.
        var big = try ScenarioReader(path: "s", text: String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)).read().base
        big.nodes = 8
        big.layout = ParallelLayout(dp: 2, tp: 8, pp: 4, microbatches: 8)
        big.batch = 64
        big.fidelity = .flow
        let reduced = StepSimulator(scenario: big).run(), full = StepSimulator(scenario: big).runEveryPipeline()
        XCTAssertEqual(reduced.stepTime.seconds, full.stepTime.seconds, accuracy: reduced.stepTime.seconds * 1e-6)
    }

    /// Per-stage parameters and bytes come from the shard plan: an untied head is synced over
    /// dp and updated at every pipeline depth; tp and pp bytes are what the step sends.
    func testStageTrafficComesFromTheShardPlan() throws {
        let link = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))
        let llama = ModelCatalog.llama8B
        func run(_ layout: ParallelLayout) -> StepReport {
            var s = Scenario(name: "llama", device: DeviceCatalog.h100, nodes: layout.worldSize, gpusPerNode: 1, topology: .singleSwitch,
                             scaleUp: link, scaleOut: link, model: llama, batch: 8 * layout.dp, sequence: 2048, layout: layout)
            s.zero = 1
            return StepSimulator(scenario: s).run()
        }
        let dp = run(ParallelLayout(dp: 8, microbatches: 8))
        XCTAssertEqual(dp.stages.count, 1)
        XCTAssertEqual(dp.stages[0].parameters, llama.parameterCount, "one stage holds all 8.03 B, the head included")
        XCTAssertEqual(dp.stages[0].dataParallelBytes, Bytes(elements: llama.parameterCount, of: 2), "bf16 gradients of every parameter")
        XCTAssertEqual(dp.stages[0].tensorParallelBytes, .zero)
        XCTAssertEqual(dp.stages[0].pipelineBytes, .zero)
        let pp = run(ParallelLayout(tp: 2, pp: 2, microbatches: 4))
        XCTAssertEqual(pp.stages.count, 2)
        let plan = ShardPlan(model: llama, layout: ParallelLayout(tp: 2, pp: 2))
        XCTAssertEqual(pp.stages.map(\.parameters), [plan.heldElements(stage: 0), plan.heldElements(stage: 1)])
        XCTAssertEqual(pp.stages.map(\.dataParallelBytes), [0, 0], "no data parallelism")
        // Each stage sends one activation (or its gradient) per micro-batch: 8 sequences / 4 × 2048 × 4096 × 2 bytes.
        let message = Bytes(2 * 2048 * 4096 * 2)
        XCTAssertEqual(pp.stages.map(\.pipelineBytes), [message * 4, message * 4])
        // Two all-reduces per layer forward and two backward, per micro-batch, of one activation.
        XCTAssertEqual(pp.stages[0].tensorParallelBytes, message * (16 * 4 * 4))
        // FLOPs: three times the forward's per token, 8 sequences of 2048 on the one rank.
        XCTAssertEqual(dp.stages[0].flops.count, llama.trainingFLOPsPerToken(sequence: 2048) * 8 * 2048, accuracy: 1e-9 * dp.stages[0].flops.count)
        // Every figure is the plan's: summed over each stage's representative program.
        for (stage, traffic) in pp.stages.enumerated() {
            let program = StepProgram(plan: ShardPlan(model: llama, layout: ParallelLayout(tp: 2, pp: 2, microbatches: 4), zero: 1),
                                      rank: ParallelLayout(tp: 2, pp: 2).mesh.rank(dp: 0, tp: 0, pp: stage),
                                      options: StepOptions(batch: 8, sequence: 2048, bytesPerElement: 2, bucketBytes: 25_000_000))
            XCTAssertEqual(traffic.flops, program.ops.reduce(.zero) { $0 + $1.flops }, "stage \(stage)")
            let tensor = program.ops.reduce(Bytes.zero) { sum, op in if case let .collective(_, .tensor, bytes) = op { return sum + bytes } else { return sum } }
            XCTAssertEqual(traffic.tensorParallelBytes, tensor, "stage \(stage)")
        }
    }

    /// Under ZeRO the data-parallel algorithm prices the reduce-scatter and all-gather halves:
    /// each half is half of its all-reduce; tree, which has no halves, is refused where it is set.
    func testZeROHonoursTheDataParallelAlgorithm() throws {
        let model = star(16), group = Array(0..<16)
        for algorithm in [CollectiveModel.Algorithm.ring, .halvingDoubling, .hierarchical] {
            let half = model.reduceScatter(group, bytes: 64e6, algorithm: algorithm), other = model.allGather(group, bytes: 64e6, algorithm: algorithm)
            assertClose(half + other, model.allReduce(group, bytes: 64e6, algorithm: algorithm).seconds, 1e-9, "\(algorithm)")
        }
        XCTAssertNotEqual(model.reduceScatter(group, bytes: 1e3, algorithm: .halvingDoubling), model.reduceScatter(group, bytes: 1e3, algorithm: .ring),
                          "log n latency terms, not n − 1")
        let good = try String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)
        var steps: [String: SimTime] = [:]
        for algorithm in ["ring", "halving-doubling", "hierarchical"] {
            let text = good.replacingOccurrences(of: "data_parallel: ring", with: "data_parallel: \(algorithm)")
            XCTAssertTrue(text.contains("data_parallel: \(algorithm)"), "the scenario names its data-parallel algorithm")
            steps[algorithm] = StepSimulator(scenario: try ScenarioReader(path: "s.yaml", text: text).read().base).run().stepTime
        }
        // Its dp groups take one GPU per node, so hierarchical has nothing to do inside a node and equals the ring.
        XCTAssertNotEqual(steps["halving-doubling"], steps["ring"], "the algorithm prices ZeRO's collectives: \(steps)")
        XCTAssertEqual(steps["hierarchical"], steps["ring"])
        let tree = good.replacingOccurrences(of: "data_parallel: ring", with: "data_parallel: tree")
        XCTAssertTrue(error(tree).contains("cannot do; use ring, halving-doubling, hierarchical or auto, or zero: 0"), error(tree))
    }

    func testALayoutThatDoesNotFitSaysWhatToChange() throws {
        var scenario = try ScenarioReader(path: "s", text: String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)).read().base
        scenario.layout = ParallelLayout(dp: 1024, tp: 1, pp: 1, microbatches: 1)
        scenario.batch = 1024
        scenario.zero = 0
        let report = StepSimulator(scenario: scenario).run()
        let problem = try XCTUnwrap(report.memory.problem(capacity: scenario.device.memoryBytes, device: "H100"))
        XCTAssertTrue(problem.contains("more than H100's 80.0 GiB"), problem)
        XCTAssertTrue(problem.contains("try more tensor or pipeline parallelism, ZeRO"), problem)
    }
}

private extension Double {
    /// ⌈log₂ self⌉ for self ≥ 1.
    var log2Ceiling: Double { (log2(self)).rounded(.up) }
}
