import Parallelism
import Workload
import XCTest

/// Under expert parallelism a rank holds only its group position's routed experts; their
/// gradients are summed in buckets of their own over the ranks holding the same experts.
final class ExpertGradientSyncTests: XCTestCase {
    let model = ModelCatalog.gptTinyMoE
    let options = StepOptions(batch: 8, sequence: 64)

    func program(_ layout: ParallelLayout, rank: Int) -> StepProgram {
        StepProgram(plan: ShardPlan(model: model, layout: layout), rank: rank, options: options)
    }

    /// Elements of the routed experts `experts` of every MoE block.
    func expertElements(_ experts: Range<Int>) -> Int {
        model.parameters.filter { $0.expert.map(experts.contains) ?? false }.reduce(0) { $0 + $1.count }
    }

    func testRoutedExpertsAreSummedOverTheRanksHoldingThem() {
        let layout = ParallelLayout(dp: 4, ep: 2), dense = model.parameterCount - expertElements(0..<8)
        XCTAssertEqual(layout.mesh.expertDataGroup(of: 1), [1, 3])
        XCTAssertEqual(layout.mesh.expertDataGroup(of: 2), [0, 2])
        for rank in 0..<4 {
            let p = program(layout, rank: rank), held = (rank % 2 * 4)..<(rank % 2 * 4 + 4)
            XCTAssertEqual(ShardPlan(model: model, layout: layout).heldExperts(expertRank: rank % 2), held)
            let byGroup = Dictionary(grouping: p.sync.buckets, by: \.group).mapValues { $0.reduce(0) { $0 + $1.held.count } }
            XCTAssertEqual(byGroup[.data], dense, "rank \(rank): every dense parameter over the dp group")
            XCTAssertEqual(byGroup[.expertData], expertElements(held), "rank \(rank): its own experts over their holders")
            XCTAssertEqual(p.totals.collectiveBytes[.expertData], Bytes(elements: expertElements(held), of: 4))
            XCTAssertEqual(p.totals.updated, dense + expertElements(held), "rank \(rank) updates what it holds")
            // The norm's routed part crosses the expert-parallel group.
            XCTAssertTrue(p.blocks.first { $0.phase == .optimizer }!.ops.contains(.collective(.allReduce, group: .expert, bytes: 4)))
            // A bucket's buffer ranges are its own experts' parameters.
            let plan = p.plan
            for bucket in p.sync.buckets where bucket.group == .expertData {
                for index in p.sync.entries(of: bucket) { XCTAssertTrue(held.contains(plan.entries[index].parameter.expert!)) }
            }
        }
    }

    /// ep = dp: no other rank holds a rank's experts, so their buckets move nothing.
    func testExpertsHeldByOneRankAreNotSummed() {
        let p = program(ParallelLayout(dp: 2, ep: 2), rank: 0)
        XCTAssertNil(p.totals.collectiveBytes[.expertData])
        XCTAssertEqual(p.sync.buckets.filter { $0.group == .expertData }.reduce(0) { $0 + $1.held.count }, expertElements(0..<4))
        XCTAssertEqual(p.totals.updated, model.parameterCount - expertElements(4..<8))
    }

    /// ZeRO's blocks of an expert bucket are cut over the ranks holding those experts.
    func testZeROCutsExpertBucketsOverTheirHolders() {
        let layout = ParallelLayout(dp: 8, zeroStage: 1, ep: 2)
        let p = program(layout, rank: 2), bucket = p.sync.buckets.first { $0.group == .expertData }!
        XCTAssertEqual(GradientSync.member(of: bucket, dataParallelRank: 2, layout: layout).size, 4)
        XCTAssertEqual(StepProgram.block(bucket, dataParallelRank: 2, layout: layout), BlockPartition(count: bucket.held.count, parts: 4).range(1))
    }

    func testWithoutExpertParallelismEveryBucketIsTheDataGroups() {
        for layout in [ParallelLayout(dp: 4), ParallelLayout(dp: 2, pp: 2, microbatches: 2)] {
            XCTAssertTrue(program(layout, rank: 0).sync.buckets.allSatisfy { $0.group == .data }, "\(layout)")
            XCTAssertEqual(program(layout, rank: 0).sync.heldElements, ShardPlan(model: model, layout: layout).heldElements(stage: 0))
        }
    }
}
