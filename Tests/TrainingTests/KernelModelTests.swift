import Engine
import Tensor
import Training
import Workload
import XCTest

/// The products the simulator prices for a calibrated CPU (`KernelModel`) against the ones the
/// trainer really issues in a step, recorded at the BLAS call.
final class KernelModelTests: XCTestCase {
    func testTheSimulatorPricesTheProductsTheTrainerIssues() throws {
        let model = ModelCatalog.gptTiny
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = 2
        configuration.sequence = model.context
        configuration.steps = 1
        configuration.threads = 1
        let trainer = try Trainer(configuration: configuration, corpus: .builtIn())
        let calls = BLAS.record { _ = trainer.trainStep(0) }
        // The layers' products span every row of the batch (m = rows, or k = rows for a weight
        // gradient); attention's per-sequence, per-head products span one sequence at most and
        // are priced per score element instead.
        let rows = configuration.batch * configuration.sequence
        let linear = calls.filter { $0.m == rows || ($0.transA && $0.k == rows) }
        var issued: [GEMMShape: Int] = [:]
        for c in linear { issued[GEMMShape(m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB), default: 0] += 1 }
        let work = KernelModel.stage(model: model, sequences: configuration.batch, sequence: configuration.sequence,
                                     layers: model.layers, embed: true, head: true, tp: 1)
        let priced = (work.forward + work.backward).gemms
        XCTAssertEqual(issued, priced, "products the trainer issued but the simulator does not price, or the reverse")
        XCTAssertGreaterThan(calls.count, linear.count, "attention's own products were recorded too")
        XCTAssertEqual(BLAS.record {}, [], "nothing is recorded outside record")
    }
}
