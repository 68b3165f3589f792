import Engine
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// The step plan against what the trainer really issues in a step, recorded at the BLAS call.
final class StepProgramTests: XCTestCase {
    func testOneProcessIssuesThePlansProductsInOrder() throws {
        let model = ModelCatalog.gptTiny
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = 2
        configuration.sequence = model.context
        configuration.steps = 1
        configuration.threads = 1
        let trainer = try Trainer(configuration: configuration, corpus: .builtIn())
        let calls = BLAS.record { _ = trainer.trainStep(0) }
        // The layers' products span every row of the batch (m = rows, or k = rows for a weight
        // gradient); attention's per-sequence, per-head products belong to its kernel.
        let rows = configuration.batch * configuration.sequence
        let issued = calls.filter { $0.m == rows || ($0.transA && $0.k == rows) }
            .map { GEMMShape(m: $0.m, n: $0.n, k: $0.k, transA: $0.transA, transB: $0.transB) }
        let program = StepProgram(plan: ShardPlan(model: model, layout: ParallelLayout()), rank: 0,
                                  options: StepOptions(batch: configuration.batch, sequence: configuration.sequence))
        let planned = program.ops.compactMap { if case let .matmul(shape) = $0 { return shape } else { return nil } }
        XCTAssertEqual(issued, planned, "the trainer's products, in order, are the plan's")
        XCTAssertGreaterThan(calls.count, issued.count, "attention's own products were recorded too")
        XCTAssertEqual(BLAS.record {}, [], "nothing is recorded outside record")
    }
}
