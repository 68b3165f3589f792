import Collectives
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// Context parallelism (ring attention) on the in-process transport: against one process
/// (bitwise in deterministic mode, within tolerance by default), with the positions each rank
/// holds and the traffic it trades; refusals.
final class ContextParallelTests: XCTestCase {
    let layouts: [ParallelLayout] = {
        var balanced = ParallelLayout(dp: 2, cp: 2)
        balanced.contextBalanced = true
        var wide = ParallelLayout(dp: 4, cp: 4)
        wide.contextBalanced = true
        return [ParallelLayout(dp: 2, cp: 2), balanced, ParallelLayout(dp: 4, cp: 2), wide,
                ParallelLayout(dp: 2, tp: 2, cp: 2), ParallelLayout(dp: 2, pp: 2, microbatches: 2, cp: 2),
                ParallelLayout(dp: 4, microbatches: 2, zeroStage: 2, cp: 2), ParallelLayout(dp: 2, zeroStage: 3, cp: 2),
                ParallelLayout(dp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2, cp: 2)]
    }()

    func testDeterministicContextParallelLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess(layouts)
    }

    func testDefaultModeContextParallelAgreesWithOneProcessWithinTolerance() throws {
        try InProcessTraining.assertCloseToOneProcess(layouts)
    }

    /// Fewer sequences than ranks: four ranks share each of two sequences' positions (default mode).
    func testFewerSequencesThanRanksTrainAsOneProcess() throws {
        var balanced = ParallelLayout(dp: 4, cp: 4)
        balanced.contextBalanced = true
        try InProcessTraining.assertCloseToOneProcess([ParallelLayout(dp: 4, cp: 4), balanced, ParallelLayout(dp: 2, pp: 2, microbatches: 1, cp: 2)], batch: 1)
    }

    /// What each rank holds and trades: its positions, one K/V pass a layer forward and a pass and
    /// a reduce-scatter backward, of the sizes the plan gives.
    func testThePositionsHeldAndTheRingTraffic() throws {
        XCTAssertEqual(ContextShard(size: 4, index: 1, group: nil, sequence: 64).chunks(sequence: 64), [16..<32])
        XCTAssertEqual(ContextShard(size: 1, index: 0, group: nil, sequence: 64).chunks(sequence: 64), [0..<64])
        let balanced = (0..<4).map { ContextShard(size: 4, index: $0, group: nil, sequence: 64, balanced: true).chunks(sequence: 64) }
        XCTAssertEqual(balanced[1], [8..<16, 48..<56])
        XCTAssertEqual(balanced.flatMap { $0 }.map(\.count).reduce(0, +), 64, "every position held once")
        XCTAssertEqual(Set(balanced.flatMap { $0.flatMap { Array($0) } }).count, 64)
        // Causal work (keys at or before each query) is the same on every balanced rank.
        let work = balanced.map { $0.flatMap { Array($0) }.reduce(0) { $0 + $1 + 1 } }
        XCTAssertEqual(Set(work).count, 1, "\(work)")

        let c = InProcessTraining.configuration(deterministic: false)
        let layout = ParallelLayout(dp: 2, cp: 2), model = c.model
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(60)) { transport in
            let trainer = try DistributedTrainer(configuration: c, layout: layout, transport: transport, corpus: .builtIn())
            return try trainer.trainStep(0).traffic
        }
        let rows = c.batch * c.sequence / 2, block = rows * 2 * model.dModel
        for traffic in try results.map({ try $0.get() }) {
            XCTAssertEqual(traffic.contextExchanges, 3 * model.layers)
            XCTAssertEqual(traffic.contextFloats, model.layers * (2 * block + 2 * block), "two passes of the K/V block and a reduce-scatter of both blocks")
        }
    }

    func testContextParallelLayoutsTheTrainerCannotRunAreRefused() {
        func problem(_ layout: ParallelLayout, model: ModelSpec = ModelCatalog.gptTiny, sequence: Int = 64) -> String {
            do { try DistributedTrainer.checkRunnable(layout, model: model); try layout.validate(model: model, batch: 8, sequence: sequence); return "" }
            catch { return "\(error)" }
        }
        XCTAssertTrue(problem(ParallelLayout(dp: 2, tp: 2, sequenceParallel: true, cp: 2)).contains("drop --sequence-parallel"))
        XCTAssertTrue(problem(ParallelLayout(dp: 2, cp: 2), model: ModelCatalog.gptTinyMoE).contains("use a dense model with --cp"))
        var balanced = ParallelLayout(dp: 4, cp: 4)
        balanced.contextBalanced = true
        XCTAssertTrue(problem(balanced, sequence: 36).contains("multiple of 8"), problem(balanced, sequence: 36))
        XCTAssertTrue(problem(ParallelLayout(dp: 2, cp: 2), sequence: 63).contains("multiple of 2"))
        XCTAssertTrue(problem(ParallelLayout(dp: 3, cp: 2)).contains("--cp must divide --dp 3"))
        XCTAssertEqual(problem(balanced), "")
    }
}

/// Deterministic mode needs each rank of a context-parallel group to answer for its own samples.
final class ContextParallelDeterministicCheckTests: XCTestCase {
    func testTooFewSequencesAreRefusedWithTheBatchToUse() {
        XCTAssertThrowsError(try DeterministicMode.check(ParallelLayout(dp: 4, cp: 4), model: ModelCatalog.gptTiny, batch: 2, sequence: 64)) { error in
            XCTAssertTrue("\(error)".contains("use --batch 4"), "\(error)")
        }
        XCTAssertNoThrow(try DeterministicMode.check(ParallelLayout(dp: 4, cp: 4), model: ModelCatalog.gptTiny, batch: 8, sequence: 64))
    }
}
