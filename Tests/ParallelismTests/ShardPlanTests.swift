import Parallelism
import Workload
import XCTest

/// The shard plan against counts made by hand: parameters per stage, the untied head, and
/// which elements each tensor-parallel rank holds.
final class ShardPlanTests: XCTestCase {
    func testTheParameterListIsTheModelsCount() {
        for model in ModelCatalog.all {
            XCTAssertEqual(model.parameters.reduce(0) { $0 + $1.count }, model.parameterCount, model.name)
            XCTAssertEqual(Set(model.parameters.map(\.name)).count, model.parameters.count, "\(model.name): names are unique")
        }
        // llama-8b: 8.03 B parameters, its untied head among them.
        XCTAssertEqual(ModelCatalog.llama8B.parameterCount, 8_030_261_248)
        XCTAssertEqual(ModelCatalog.llama8B.parameters.last?.name, "head.w")
    }

    func testStagesOwnEveryParameterOnceAtAnyPipelineDepth() {
        for model in ModelCatalog.all {
            for pp in [1, 2, 4] where pp <= model.layers {
                let plan = ShardPlan(model: model, layout: ParallelLayout(pp: pp))
                XCTAssertEqual((0..<pp).reduce(0) { $0 + plan.ownedParameters(stage: $1) }, model.parameterCount, "\(model.name) pp\(pp)")
            }
        }
    }

    func testTheHeadIsHeldWhereItIsUsed() {
        // Untied: the head lives on the last stage, which at pp = 1 is the only one — so one rank
        // holds (and syncs over dp, and updates) every parameter.
        let llama = ModelCatalog.llama8B
        XCTAssertEqual(ShardPlan(model: llama, layout: ParallelLayout(dp: 8)).heldElements(stage: 0), llama.parameterCount)
        let pp2 = ShardPlan(model: llama, layout: ParallelLayout(pp: 2))
        let head = llama.vocabulary * llama.dModel
        XCTAssertEqual(pp2.heldElements(stage: 0) + pp2.heldElements(stage: 1), llama.parameterCount)
        XCTAssertEqual(pp2.entry("head.w")?.stages, [1])
        XCTAssertGreaterThan(pp2.heldElements(stage: 1), head)
        // Tied: at pp = 2 the last stage holds a copy of the embedding for its output projection.
        let tiny = ModelCatalog.gptTiny
        let tied = ShardPlan(model: tiny, layout: ParallelLayout(pp: 2))
        XCTAssertEqual(tied.entry("wte")?.stages, [0, 1])
        XCTAssertEqual(tied.heldElements(stage: 0) + tied.heldElements(stage: 1), tiny.parameterCount + tiny.vocabulary * tiny.dModel)
    }

    func testTensorParallelRanksPartitionEverySplitParameter() {
        for model in [ModelCatalog.gptTiny, ModelCatalog.gptSmall] {
            for tp in [2, model.heads == 6 ? 3 : 4] where model.heads % tp == 0 && model.kvHeads % tp == 0 {
                let plan = ShardPlan(model: model, layout: ParallelLayout(tp: tp))
                for entry in plan.entries.prefix(16) where entry.split != .replicated {
                    var covered = [Int](repeating: 0, count: entry.parameter.count)
                    for rank in 0..<tp {
                        let ranges = plan.ranges(of: entry, tensorRank: rank)
                        XCTAssertEqual(ranges.reduce(0) { $0 + $1.count }, entry.elementsPerRank, entry.name)
                        for range in ranges { for i in range { covered[i] += 1 } }
                    }
                    XCTAssertTrue(covered.allSatisfy { $0 == 1 }, "\(model.name) tp\(tp): \(entry.name) is not split exactly once")
                }
            }
        }
    }

    func testColumnAndRowSplitsAreMegatrons() {
        // gpt-tiny at tp 2: rank 1 holds the second half of each of q, k and v (rows), and the
        // second half of every row of the projection (columns).
        let plan = ShardPlan(model: ModelCatalog.gptTiny, layout: ParallelLayout(tp: 2))
        let c = 128
        XCTAssertEqual(plan.ranges(of: plan.entry("h0.attn.qkv.w")!, tensorRank: 1),
                       [64 * c..<128 * c, 192 * c..<256 * c, 320 * c..<384 * c])
        XCTAssertEqual(plan.ranges(of: plan.entry("h0.attn.qkv.b")!, tensorRank: 0), [0..<64, 128..<192, 256..<320])
        let projection = plan.ranges(of: plan.entry("h0.attn.proj.w")!, tensorRank: 1)
        XCTAssertEqual(projection.count, c)
        XCTAssertEqual(projection[2], (2 * c + 64)..<(3 * c))
        XCTAssertEqual(plan.entry("h0.attn.proj.b")?.split, .replicated)
        XCTAssertEqual(plan.entry("h0.mlp.fc.w")?.split, .column)
        XCTAssertEqual(plan.entry("h0.mlp.proj.w")?.split, .row)
        // Grouped-query attention: q, k and v sections of different heights each split evenly.
        let llama = ShardPlan(model: ModelCatalog.llama8B, layout: ParallelLayout(tp: 8))
        let qkv = llama.entry("h0.attn.qkv.w")!
        XCTAssertEqual(qkv.parameter.sections, [4096, 1024, 1024])
        XCTAssertEqual(llama.ranges(of: qkv, tensorRank: 7).map(\.count), [512 * 4096, 128 * 4096, 128 * 4096])
    }

    func testZeROShardsTheOptimizer() {
        let model = ModelCatalog.gptTiny
        let plain = ShardPlan(model: model, layout: ParallelLayout(dp: 4))
        let zero = ShardPlan(model: model, layout: ParallelLayout(dp: 4), zero: 1)
        XCTAssertEqual(zero.optimizerElements(stage: 0), plain.optimizerElements(stage: 0) / 4)
        XCTAssertEqual(plain.dataParallelGradientBytes(stage: 0, bytesPerElement: 4), Double(model.parameterCount * 4))
    }
}

/// One identity per pipeline message: every send meets the receive of the same message, and
/// no two messages of a step share a tag.
final class PipelineMessageTests: XCTestCase {
    func testSendsAndReceivesNameTheSameMessagesWithUniqueTags() {
        for kind in PipelineSchedule.Kind.allCases {
            for (p, m) in [(2, 4), (4, 8), (3, 6)] {
                let v = kind == .interleaved ? 2 : 1
                let schedule = PipelineSchedule(kind: kind, stages: p, microbatches: m, virtualStages: v)
                var sent: [PipelineMessage] = [], received: [PipelineMessage] = []
                for program in schedule.actions {
                    for action in program {
                        guard let message = action.message else { continue }
                        if action.isSend { sent.append(message) } else { received.append(message) }
                    }
                }
                XCTAssertEqual(Set(sent), Set(received), "\(kind) p\(p) m\(m)")
                // Every boundary between virtual stages carries each micro-batch both ways.
                XCTAssertEqual(sent.count, 2 * (p * v - 1) * m)
                XCTAssertEqual(Set(sent.map { $0.tag(stages: p * v) }).count, sent.count, "tags are unique")
                XCTAssertTrue(sent.allSatisfy { $0.tag(stages: p * v) < 1 << 20 }, "tags fit a transport's user tag space")
            }
        }
        XCTAssertEqual(PipelineMessage(.gradient, microbatch: 3, from: 1, to: 0).description, "gradients of micro-batch 3, stage 1 → 0")
    }
}
