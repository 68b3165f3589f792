import Collectives
import Engine
import Parallelism
import Training
import Workload
import XCTest

/// Expert parallelism in the trainer (`--ep`): each rank of an expert-parallel group holds
/// experts/ep experts, the tokens travel to their expert's holder and back by all-to-all, and
/// the experts' gradients are summed over the ranks holding the same experts.
final class ExpertParallelTests: XCTestCase {
    let moe = ModelCatalog.gptTinyMoE

    func testExpertParallelLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess([ParallelLayout(dp: 2, ep: 2), ParallelLayout(dp: 4, ep: 2),
                                                       ParallelLayout(dp: 2, pp: 2, microbatches: 2, ep: 2)], model: moe)
        // Dropping at capacity 1, and every rank one expert-parallel group of four.
        try InProcessTraining.assertBitwiseOneProcess([ParallelLayout(dp: 4, ep: 4)], model: MixtureOfExpertsTests.tinyDropping)
    }

    func testDefaultModeExpertParallelIsCloseToOneProcess() throws {
        try InProcessTraining.assertCloseToOneProcess([ParallelLayout(dp: 2, ep: 2), ParallelLayout(dp: 4, ep: 2)], model: moe)
    }

    /// What one step did on every rank: its result and the state it holds.
    func firstStep(_ layout: ParallelLayout, model: ModelSpec) throws -> [(result: DistributedTrainer.StepResult, state: StateBytes)] {
        let c = InProcessTraining.configuration(deterministic: false, model: model)
        let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(120)) { transport in
            let trainer = try DistributedTrainer(configuration: c, layout: layout, transport: transport, corpus: .builtIn())
            return (try trainer.trainStep(0), trainer.lastStateBytes)
        }
        return try results.map { try $0.get() }
    }

    /// A rank keeps only its own experts' weights, gradients and moments: what the memory model
    /// predicts, and resident in memory no more than that.
    func testEachRankHoldsOnlyItsExperts() throws {
        let c = InProcessTraining.configuration(deterministic: false, model: moe)
        for layout in [ParallelLayout(dp: 4), ParallelLayout(dp: 4, ep: 2), ParallelLayout(dp: 4, ep: 4),
                       ParallelLayout(dp: 4, zeroStage: 1, ep: 2), ParallelLayout(dp: 4, zeroStage: 3, ep: 2)] {
            let modelled = MemoryModel.stages(model: moe, layout: layout, zero: layout.zeroStage, microbatchSequences: 1, sequence: c.sequence,
                                              precision: .fp32, recompute: .none, inFlight: [])
                .map { $0.weights + $0.gradients + $0.optimizer }.max()!
            for (rank, step) in try firstStep(layout, model: moe).enumerated() {
                // ZeRO's blocks are whole elements, the first ranks' one larger per bucket.
                XCTAssertEqual(Double(step.state.held), modelled, accuracy: max(1, modelled * 1e-3), "\(layout) rank \(rank)")
                XCTAssertLessThanOrEqual(Double(step.state.resident), Double(step.state.held) * 1.03 + 256 * 1024, "\(layout) rank \(rank)")
            }
        }
        // Closed form: each of gpt-tiny-moe's two MoE blocks has 8 experts of 128·256·2 + 256 + 128 parameters,
        // kept four times (weights, gradients, two moments) in fp32; ep 4 keeps 2 of the 8.
        let perExpert = 128 * 256 * 2 + 256 + 128
        let whole = try firstStep(ParallelLayout(dp: 4), model: moe)[0].state.held
        let split = try firstStep(ParallelLayout(dp: 4, ep: 4), model: moe)[0].state.held
        XCTAssertEqual(whole - split, 2 * 6 * perExpert * 4 * 4)
    }

    /// Four all-to-alls a block each step (dispatch and combine, forward and backward); the group
    /// hands them every kept assignment's row four times, plus each dispatch's counts.
    func testAllToAllsMoveEveryKeptAssignment() throws {
        let c = InProcessTraining.configuration(deterministic: false, model: moe)
        let steps = try firstStep(ParallelLayout(dp: 2, ep: 2), model: moe)
        for (rank, step) in steps.enumerated() {
            XCTAssertEqual(step.result.traffic.expertExchanges, 4 * moe.expertLayers, "rank \(rank)")
            XCTAssertGreaterThan(step.result.expertSeconds, 0, "rank \(rank)")
        }
        let kept = c.batch * c.sequence * moe.moe!.topK   // no capacity: nothing dropped
        let headers = 2 * 2 * (1 + 4 * c.batch / 2)        // per block: two senders, a header to each member
        XCTAssertEqual(steps.map(\.result.traffic.expertFloats).reduce(0, +), moe.expertLayers * (4 * kept * moe.dModel + headers))
        let plain = try firstStep(ParallelLayout(dp: 2), model: moe)
        XCTAssertEqual(plain.map(\.result.traffic.expertExchanges), [0, 0])
        // The experts' gradients are summed over nobody when every dp rank is in one group: less dp traffic.
        XCTAssertLessThan(steps[0].result.traffic.dataFloats, plain[0].result.traffic.dataFloats)
    }

    /// ZeRO shards a routed expert's state over the ranks holding it (each bucket's group): still bitwise.
    func testZeROWithExpertParallelismIsBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess([ParallelLayout(dp: 4, zeroStage: 1, ep: 2), ParallelLayout(dp: 4, zeroStage: 3, ep: 2),
                                                       ParallelLayout(dp: 2, pp: 2, microbatches: 2, zeroStage: 2, ep: 2)], model: moe)
        try InProcessTraining.assertCloseToOneProcess([ParallelLayout(dp: 4, zeroStage: 2, ep: 2)], model: moe)
    }
}
