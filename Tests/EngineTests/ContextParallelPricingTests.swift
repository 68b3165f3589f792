import Engine
import Parallelism
import Workload
import XCTest

/// Context parallelism (ring attention) in the plan and the simulator: each rank of a cp group
/// holds 1/cp of the same sequences' positions, gathers the group's K/V blocks round the ring for
/// every attention (backward: gathers them again and passes their gradients back), and the
/// simulator charges what of that ring its attention kernels do not hide.
final class ContextParallelPricingTests: XCTestCase {
    func shipped(cp: Int) throws -> Scenario {
        var text = try String(contentsOfFile: EngineTests.scenarios + "/llama-8b-context-parallel.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "cp: 4,", with: "cp: \(cp),")
        text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("sweep:") }.joined(separator: "\n")
        return try ScenarioReader(path: "llama-cp.yaml", text: text).read().base
    }

    /// Per layer: one K/V all-gather forward; backward one more and a reduce-scatter of their
    /// gradients; every product over the rank's own positions, half of dp2's work per rank at dp4·cp2.
    func testThePlanGathersKeysAndValuesRoundTheRing() {
        let model = ModelCatalog.gptTiny, options = StepOptions(batch: 4, sequence: 128)
        let layout = ParallelLayout(dp: 4, cp: 2)
        XCTAssertEqual(layout.mesh.cpGroup(of: 3), [2, 3])
        XCTAssertEqual(layout.sequencesPerMicrobatch(batch: 4), 2, "two groups of two ranks share the four sequences")
        let program = StepProgram(plan: ShardPlan(model: model, layout: layout), rank: 1, options: options)
        let block = Bytes(elements: 2 * 64 * 2 * model.kvHeads * model.headSize, of: 4)   // 2 sequences × 64 positions × K and V
        let ring = program.ops.compactMap { op -> StepOp? in
            if case .collective(_, .context, _) = op { return op } else { return nil }
        }
        XCTAssertEqual(ring.filter { $0 == .collective(.allGather, group: .context, bytes: block) }.count, 2 * model.layers)
        XCTAssertEqual(ring.filter { $0 == .collective(.reduceScatter, group: .context, bytes: block * 2) }.count, model.layers)
        XCTAssertEqual(ring.count, 3 * model.layers)
        XCTAssertTrue(program.ops.contains { if case let .matmul(g) = $0 { return g.m == 128 && g.k == model.dModel } else { return false } },
                      "products over 2 sequences × 64 positions")
        let plain = StepProgram(plan: ShardPlan(model: model, layout: ParallelLayout(dp: 2)), rank: 1, options: options)
        XCTAssertEqual(program.totals.flops.count * 2, plain.totals.flops.count, accuracy: 1e-6 * plain.totals.flops.count)
        XCTAssertEqual(program.totals.collectiveBytes[.data], plain.totals.collectiveBytes[.data], "every rank holds every parameter")
    }

    /// Inside a node the ring hides behind the attention; cp 16 spans two nodes and its ring shows.
    func testTheRingHidesInsideANodeAndShowsAcrossScaleOut() throws {
        let inside = StepSimulator(scenario: try shipped(cp: 8)).run(), across = StepSimulator(scenario: try shipped(cp: 16)).run()
        XCTAssertEqual(inside.breakdown.contextParallel, .zero)
        XCTAssertGreaterThan(across.breakdown.contextParallel.seconds, 0.05 * across.stepTime.seconds)
        XCTAssertGreaterThan(across.stepTime, inside.stepTime)
        // The same tokens on every rank whatever cp is: the same compute and activations.
        XCTAssertEqual(across.breakdown.compute, inside.breakdown.compute)
        XCTAssertEqual(across.memory.activations, inside.memory.activations, accuracy: 1)
        // A slower fabric inside the node shows it too, and never makes the ring cheaper.
        var slow = try shipped(cp: 8)
        slow.scaleUp = Link(bandwidth: Bandwidth(bytesPerSecond: 5e9), latency: slow.scaleUp.latency)
        let slowed = StepSimulator(scenario: slow).run()
        XCTAssertGreaterThan(slowed.breakdown.contextParallel, inside.breakdown.contextParallel)
    }

    /// Sixteen sequences cannot feed 64 data-parallel ranks; a context-parallel group of four can.
    func testFewerSequencesThanRanksNeedContextParallelism() throws {
        XCTAssertThrowsError(try shipped(cp: 1)) { error in
            XCTAssertTrue("\(error)".contains("--cp") && "\(error)".contains("16 sequences"), "\(error)")
        }
        XCTAssertEqual(try shipped(cp: 4).layout.sequencesPerMicrobatch(batch: 16), 1)
    }

    func testLayoutsThatCannotSplitTheSequenceAreRefused() {
        let model = ModelCatalog.gptTinyMoE
        func reason(_ layout: ParallelLayout, sequence: Int = 128) -> String {
            do { try layout.validate(model: model, batch: 8, sequence: sequence); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(reason(ParallelLayout(dp: 4, cp: 3)).contains("--cp must divide --dp 4"))
        XCTAssertTrue(reason(ParallelLayout(dp: 4, ep: 2, cp: 2)).contains("not modelled yet"))
        XCTAssertTrue(reason(ParallelLayout(dp: 4, cp: 4), sequence: 126).contains("multiple of 4"))
        XCTAssertEqual(reason(ParallelLayout(dp: 4, cp: 4)), "")
    }
}
