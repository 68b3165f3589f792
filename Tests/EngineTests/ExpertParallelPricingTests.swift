import Engine
import Parallelism
import Workload
import XCTest

/// The simulator prices expert parallelism from the plan: the tokens' all-to-alls on the
/// expert-parallel group's routes, the experts split over its members, a hot expert's rank.
final class ExpertParallelPricingTests: XCTestCase {
    func shipped(ep: Int, extra: String = "") throws -> Scenario {
        var text = try String(contentsOfFile: EngineTests.scenarios + "/mixtral-8x7b-expert-parallel.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "ep: 4,", with: "ep: \(ep),").replacingOccurrences(of: "efficiency: 0.5}", with: "efficiency: 0.5\(extra)}")
        // One point of the sweep (its base, resolved).
        text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("sweep:") }.joined(separator: "\n")
        return try ScenarioReader(path: "mixtral.yaml", text: text).read().base
    }

    /// Each MoE block of each micro-batch exchanges its tokens four times (to the experts and
    /// back, forward and backward) and twice more when the backward pass recomputes the forward;
    /// each exchange is a personalised all-to-all of the micro-batch's rows × top-k × d_model.
    func testAllToAllTimeIsTheExchangesOnTheGroupsRoutes() throws {
        for ep in [2, 4, 8] {
            let s = try shipped(ep: ep), simulator = StepSimulator(scenario: s), report = simulator.run()
            let model = s.model, moe = try XCTUnwrap(model.moe), layout = s.layout
            let rows = s.batch / layout.dp / layout.microbatches * s.sequence
            let bytes = Double(rows * moe.topK * model.dModel * s.precision.bytes)
            let exchanges = Double((s.recompute == .full ? 6 : 4) * model.expertLayers * layout.microbatches)
            let group = layout.mesh.epGroup(of: 0)
            XCTAssertEqual(group, Array(0..<ep), "ep consecutive data-parallel ranks")
            // (n − 1) rounds, each as slow as its slowest message of 1/n of the buffer.
            let rounds = (1..<ep).map { r in
                group.indices.map { i in simulator.network.time([Message(from: group[i], to: group[(i + r) % ep], bytes: bytes / Double(ep))]).seconds }.max()!
            }
            XCTAssertEqual(report.breakdown.expertAllToAll.seconds, exchanges * rounds.reduce(0, +), accuracy: 1e-6 * exchanges, "ep \(ep)")
        }
    }

    /// Nodes of 4: ep 4 stays on a node's scale-up links, ep 8 crosses the scale-out fabric.
    func testCrossingScaleOutSlowsTheExchangeAndSplittingShrinksMemory() throws {
        let inside = StepSimulator(scenario: try shipped(ep: 4)).run(), across = StepSimulator(scenario: try shipped(ep: 8)).run()
        XCTAssertGreaterThan(across.breakdown.expertAllToAll.seconds, 5 * inside.breakdown.expertAllToAll.seconds)
        // Weights: the dense part whole, each routed expert on one member of the group.
        let model = ModelCatalog.mixtral8x7B, experts = Double(model.expertLayers * model.moe!.experts * model.parametersPerExpert)
        for (ep, report) in [(1, StepSimulator(scenario: try shipped(ep: 1)).run()), (4, inside), (8, across)] {
            XCTAssertEqual(report.memory.weights, 2 * (Double(model.parameterCount) - experts + experts / Double(ep)), accuracy: 1, "ep \(ep)")
        }
        XCTAssertLessThan(across.memory.total, inside.memory.total)
        // The same FLOPs on every rank: the experts' tokens come from the whole group.
        XCTAssertEqual(across.breakdown.compute.seconds, inside.breakdown.compute.seconds, accuracy: 1e-3 * inside.breakdown.compute.seconds)
    }

    /// A hot expert: its rank computes its share times the factor, and the all-to-alls make every rank wait for it.
    func testAHotExpertSlowsTheStep() throws {
        let even = StepSimulator(scenario: try shipped(ep: 4)).run(), hot = StepSimulator(scenario: try shipped(ep: 4, extra: ", hot_expert: 2")).run()
        XCTAssertGreaterThan(hot.stepTime, even.stepTime)
        // ep 4: two experts a rank; the hot one doubles, so its rank's expert work is 3/2 of even.
        let s = try shipped(ep: 4), model = s.model, tokens = Double(s.batch * s.sequence) / Double(s.layout.dp)
        let expertFLOPs = 3 * 2 * 2 * Double(3 * model.dModel * model.moe!.expertHidden) * tokens * Double(model.expertLayers)
        let extra = 0.5 * expertFLOPs * (s.recompute == .full ? 4.0 / 3 : 1)
        XCTAssertEqual((hot.breakdown.compute - even.breakdown.compute).seconds / even.breakdown.compute.seconds,
                       extra / (model.trainingFLOPsPerToken(sequence: s.sequence) * tokens * (s.recompute == .full ? 4.0 / 3 : 1)), accuracy: 0.02)
    }

    func testScenariosRefuseExpertParallelismThatCannotRun() throws {
        let text = try String(contentsOfFile: EngineTests.scenarios + "/mixtral-8x7b-expert-parallel.yaml", encoding: .utf8)
        func refusal(_ from: String, _ to: String, and more: [(String, String)] = []) -> String {
            let changed = ([(from, to)] + more).reduce(text) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
                .split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("sweep:") }.joined(separator: "\n")
            XCTAssertFalse(text.contains(to), to)
            do {
                // A sweep point that cannot run says why in its place; so does the whole file.
                let sweep = try ScenarioReader(path: "s.yaml", text: changed).read()
                return sweep.points.compactMap { if case let .failure(error) = $0.scenario { return "\(error)" } else { return nil } }.joined(separator: "; ")
            } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal("model: mixtral-8x7b", "model: llama-8b").contains("has none"))
        let uneven = refusal("ep: 4,", "ep: 16,")
        XCTAssertTrue(uneven.contains("do not split evenly"), uneven)
        let indivisible = refusal("nodes: 8, gpus_per_node: 4", "nodes: 3, gpus_per_node: 4", and: [("batch: 128", "batch: 96"), ("ep: 4,", "ep: 8,")])
        XCTAssertTrue(indivisible.contains("must divide --dp 12"), indivisible)
        XCTAssertTrue(refusal("efficiency: 0.5}", "efficiency: 0.5, hot_expert: 0.5}").contains("1 (even) or more"))
        XCTAssertTrue(refusal("model: mixtral-8x7b, batch: 128, sequence: 4096, efficiency: 0.5}",
                              "model: llama-8b, batch: 128, sequence: 4096, efficiency: 0.5, hot_expert: 2}").contains("no experts"))
    }

    /// The plan: four all-to-alls of rows × top-k × d_model a block and micro-batch, over the expert group.
    func testThePlanExchangesTokensFourTimesABlock() {
        let model = ModelCatalog.mixtral8x7B, layout = ParallelLayout(dp: 8, microbatches: 2, ep: 4)
        let program = StepProgram(plan: ShardPlan(model: model, layout: layout), rank: 0, options: StepOptions(batch: 16, sequence: 1024, bytesPerElement: 2))
        let exchanges = program.ops.compactMap { op -> Bytes? in if case let .collective(.allToAll, .expert, bytes) = op { return bytes } else { return nil } }
        XCTAssertEqual(exchanges.count, 4 * model.expertLayers * 2)
        XCTAssertTrue(exchanges.allSatisfy { $0 == Bytes(elements: 1024 * 2 * model.dModel, of: 2) })
        // Each rank runs 2 of the 8 experts, at four members' tokens each: the same FLOPs as ep 1.
        let alone = StepProgram(plan: ShardPlan(model: model, layout: ParallelLayout(dp: 8, microbatches: 2)), rank: 0,
                                options: StepOptions(batch: 16, sequence: 1024, bytesPerElement: 2))
        XCTAssertEqual(program.totals.flops.count, alone.totals.flops.count, accuracy: 1e-9 * alone.totals.flops.count)
        XCTAssertEqual(ParallelLayout(dp: 8, ep: 4).description, "dp8·ep4")
        XCTAssertEqual(DeviceMesh(dp: 8, tp: 2, pp: 1, ep: 4).epGroup(of: 9), [9, 11, 13, 15], "dp 4…7 of tensor shard 1")
    }

    /// The routed experts' gradients are summed over the ranks holding the same experts: with ep = dp
    /// nobody else does, and their buckets take no time (the dense ones still cross the dp group).
    func testExpertBucketsAreSummedOverTheirHolders() throws {
        var text = try String(contentsOfFile: EngineTests.scenarios + "/mixtral-8x7b-expert-parallel.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "nodes: 8", with: "nodes: 2").replacingOccurrences(of: "ep: 4,", with: "ep: 8,")
        text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("sweep:") }.joined(separator: "\n")
        let s = try ScenarioReader(path: "mixtral.yaml", text: text).read().base
        XCTAssertEqual(s.layout.dp, 8)
        let report = StepSimulator(scenario: s).run()
        let program = StepProgram(plan: ShardPlan(model: s.model, layout: s.layout, zero: s.zero), rank: 0,
                                  options: StepOptions(batch: s.batch, sequence: s.sequence, bytesPerElement: s.precision.bytes, bucketBytes: Int(s.bucketBytes)))
        let buckets = report.spans.filter { $0.lane == "data-parallel" && $0.name.hasPrefix("bucket ") && $0.stage == 0 }
        XCTAssertEqual(buckets.count, program.sync.buckets.count)
        XCTAssertEqual(buckets.filter { $0.end > $0.start }.count, program.sync.buckets.filter { $0.group == .data }.count)
        XCTAssertGreaterThan(program.sync.buckets.filter { $0.group == .expertData }.count, 0)
    }
}
