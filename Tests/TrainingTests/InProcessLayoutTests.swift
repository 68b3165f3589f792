import Collectives
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// The distributed trainer on the in-process transport (every rank a thread of this process):
/// the layouts against one process in seconds, without starting a worker. The real
/// multi-process runs over MPI and ZeroMQ live in FleetTests.
final class InProcessLayoutTests: XCTestCase {
    func train(_ layout: ParallelLayout, deterministic: Bool, context: ExecutionContext = ExecutionContext(),
               threads: [Int]? = nil) throws -> (losses: [Float], parameters: [Float]) {
        try InProcessTraining.train(layout, deterministic: deterministic, context: context, threads: threads)
    }

    func splitInvariantKernel() throws { try InProcessTraining.splitInvariantKernel() }

    func testDeterministicLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess([
            ParallelLayout(dp: 2), ParallelLayout(tp: 2), ParallelLayout(pp: 2, microbatches: 4),
            ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 4),
            ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2),
            ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2)])
    }

    func testDefaultModeLayoutsAgreeWithOneProcessWithinTolerance() throws {
        try InProcessTraining.assertCloseToOneProcess([
            ParallelLayout(dp: 2), ParallelLayout(tp: 2), ParallelLayout(pp: 2, microbatches: 4),
            ParallelLayout(dp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2)])
    }

    /// The reduction order is the trainer's own (its execution context), not the process's:
    /// a perturbed trainer differs while an unperturbed one beside it does not.
    func testTheReductionOrderBelongsToTheTrainer() throws {
        try splitInvariantKernel()
        let tree = try train(ParallelLayout(), deterministic: true)
        let perturbed = try train(ParallelLayout(), deterministic: true, context: ExecutionContext(reductionOrder: .leftFoldForTesting))
        XCTAssertNotEqual(perturbed.parameters.map(\.bitPattern), tree.parameters.map(\.bitPattern), "a left fold rounds differently")
        XCTAssertEqual(try train(ParallelLayout(), deterministic: true).parameters.map(\.bitPattern), tree.parameters.map(\.bitPattern))
    }

    /// Ranks on threads of one process each keep their kernel width (1 and 2 here), and the
    /// width changes no bit.
    func testRanksKeepTheirOwnThreadCount() throws {
        try splitInvariantKernel()
        let same = try train(ParallelLayout(dp: 2), deterministic: true, threads: [1, 1])
        let mixed = try train(ParallelLayout(dp: 2), deterministic: true, threads: [1, 2])
        XCTAssertEqual(mixed.parameters.map(\.bitPattern), same.parameters.map(\.bitPattern))
        XCTAssertEqual(Parallel.threads, 1, "the test thread's width is untouched")
        XCTAssertEqual(Parallel.with(threads: 3) { Parallel.threads }, 3)
    }
}
