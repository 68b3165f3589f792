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
                ParallelLayout(dp: 4, microbatches: 2, zeroStage: 2, cp: 2)]
    }()

    func testDeterministicContextParallelLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess(layouts)
    }

    func testDefaultModeContextParallelAgreesWithOneProcessWithinTolerance() throws {
        try InProcessTraining.assertCloseToOneProcess(layouts)
    }
}
