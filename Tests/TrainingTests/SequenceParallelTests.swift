import Collectives
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// Sequence parallelism on the in-process transport: against one process (bitwise in
/// deterministic mode), the positions each shard holds, and the traffic it trades.
final class SequenceParallelTests: XCTestCase {
    let layouts = [ParallelLayout(tp: 2, sequenceParallel: true),
                   ParallelLayout(tp: 4, sequenceParallel: true),
                   ParallelLayout(dp: 2, tp: 2, sequenceParallel: true),
                   ParallelLayout(tp: 2, pp: 2, microbatches: 4, sequenceParallel: true),
                   ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2, zeroStage: 3,
                                  sequenceParallel: true)]

    func testDeterministicSequenceParallelLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess(layouts)
    }

    func testDefaultModeSequenceParallelAgreesWithOneProcessWithinTolerance() throws {
        try InProcessTraining.assertCloseToOneProcess(layouts)
    }

    /// The same tensor-parallel layout with and without sequence parallelism: the f/g
    /// all-reduces become all-gather/reduce-scatter pairs moving the same bytes on a ring, the
    /// norms' gradients add 2c floats each, and pipeline messages shrink by tp.
    func testTheTrafficOfSequenceParallelism() {
        let model = ModelCatalog.gptTiny, options = StepOptions(batch: 8, sequence: 64)
        func program(_ sp: Bool) -> StepProgram {
            StepProgram(plan: ShardPlan(model: model, layout: ParallelLayout(tp: 2, pp: 2, microbatches: 2, sequenceParallel: sp)),
                        rank: 0, options: options)
        }
        let plain = program(false), split = program(true)
        func collectives(_ p: StepProgram, _ kind: CollectiveKind) -> [Int] {
            p.ops.compactMap { if case let .collective(k, .tensor, bytes) = $0, k == kind { return bytes.count } else { return nil } }
        }
        let rows = 4 * 64, c = model.dModel, layers = 2, m = 2
        XCTAssertEqual(collectives(plain, .allReduce), Array(repeating: rows * c * 4, count: 4 * layers * m))
        XCTAssertEqual(collectives(split, .reduceScatter), Array(repeating: rows * c * 4, count: 4 * layers * m))
        // Stage 0 gathers two norms a layer forward; backward, the residual's gradient and the two norms again
        // (for the weight gradients) twice a layer each, and the residual's gradient once for the embeddings.
        XCTAssertEqual(collectives(split, .allGather), Array(repeating: rows / 2 * c * 4, count: (6 * layers + 1) * m))
        XCTAssertEqual(collectives(split, .allReduce), Array(repeating: 2 * c * 4, count: 2 * layers * m))
        XCTAssertEqual(split.totals.sentBytes.count * 2, plain.totals.sentBytes.count, "messages carry half of each sequence")
    }

    func testBadSequenceParallelLayoutsAreRefused() {
        let tiny = ModelCatalog.gptTiny
        func problem(_ layout: ParallelLayout, sequence: Int = 64) -> String {
            do { try layout.validate(model: tiny, batch: 8, sequence: sequence); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(problem(ParallelLayout(dp: 2, sequenceParallel: true)).contains("--tp 2 or more"))
        XCTAssertTrue(problem(ParallelLayout(tp: 4, sequenceParallel: true), sequence: 66).contains("use --seq 64"))
        XCTAssertEqual(problem(ParallelLayout(tp: 4, sequenceParallel: true)), "")
        // Three shards of 96 positions are not nodes of the pairwise tree over positions.
        let threeHeads = ModelSpec(name: "three-heads", vocabulary: 256, context: 128, layers: 2, heads: 3, kvHeads: 3, dModel: 96,
                                   mlpHidden: 384, gatedMLP: false, tiedEmbeddings: true, learnedPositions: true, biases: true)
        XCTAssertNoThrow(try DeterministicMode.check(ParallelLayout(tp: 3), model: threeHeads, batch: 8, sequence: 96))
        XCTAssertThrowsError(try DeterministicMode.check(ParallelLayout(tp: 3, sequenceParallel: true), model: threeHeads,
                                                         batch: 8, sequence: 96)) {
            XCTAssertTrue("\($0)".contains("--seq"), "\($0)")
        }
        XCTAssertNoThrow(try DeterministicMode.check(ParallelLayout(tp: 4, sequenceParallel: true), model: tiny, batch: 8, sequence: 96))
    }
}

extension SequenceParallelTests {
    /// Each shard allocates 1/tp of the residual stream, the norms and the residual's gradient;
    /// the gathered scratch it needs instead is one layer's worth.
    func testActivationBuffersShrinkWithTheShards() throws {
        func activations(_ layout: ParallelLayout) throws -> Int {
            var c = InProcessTraining.configuration(deterministic: false)
            c.steps = 1
            let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(120)) { transport -> Int in
                let trainer = try DistributedTrainer(configuration: c, layout: layout, transport: transport, corpus: .builtIn())
                _ = try trainer.trainStep(0)
                return trainer.lastStateBytes.activations
            }
            return try results.map { try $0.get() }.max() ?? 0
        }
        let plain = try activations(ParallelLayout(tp: 4)), split = try activations(ParallelLayout(tp: 4, sequenceParallel: true))
        XCTAssertLessThan(Double(split), 0.9 * Double(plain), "tp4·sp \(split) bytes against tp4's \(plain)")
    }
}
