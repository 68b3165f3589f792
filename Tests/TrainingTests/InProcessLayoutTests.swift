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
    static let steps = 4

    func configuration(deterministic: Bool) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: ModelCatalog.gptTiny)
        c.batch = 8
        c.sequence = 64
        c.steps = Self.steps
        c.threads = 1
        c.deterministic = deterministic
        return c
    }

    /// Per-step losses (from the reporting rank) and the gathered final parameters of `layout`.
    func train(_ layout: ParallelLayout, deterministic: Bool, context: ExecutionContext = ExecutionContext(),
               threads: [Int]? = nil) throws -> (losses: [Float], parameters: [Float]) {
        let c = configuration(deterministic: deterministic)
        let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(120)) { transport -> (losses: [Float], parameters: [Float])? in
            var mine = c
            if let threads { mine.threads = threads[transport.rank] }
            let trainer = try DistributedTrainer(configuration: mine, layout: layout, transport: transport, corpus: .builtIn(), context: context)
            let losses = try (0..<Self.steps).map { try trainer.trainStep($0).loss }
            try trainer.gatherParameters()
            return trainer.isReporter ? (losses, trainer.model.parameters.array) : nil
        }
        let reported = try results.map { try $0.get() }.compactMap { $0 }
        return try XCTUnwrap(reported.first, "one rank reports")
    }

    func splitInvariantKernel() throws {
        if let failure = BLASKernelCheck.splitInvariance() {
            throw XCTSkip("OpenBLAS kernel \(BLAS.coreName) in this test process computes other bits in pieces (\(failure))")
        }
    }

    func testDeterministicLayoutsAreBitwiseOneProcess() throws {
        try splitInvariantKernel()
        let one = try train(ParallelLayout(), deterministic: true)
        for layout in [ParallelLayout(dp: 2), ParallelLayout(tp: 2), ParallelLayout(pp: 2, microbatches: 4),
                       ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 4),
                       ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2),
                       ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2)] {
            let run = try train(layout, deterministic: true)
            XCTAssertEqual(run.losses.map(\.bitPattern), one.losses.map(\.bitPattern), "\(layout) losses")
            XCTAssertTrue(run.parameters.map(\.bitPattern) == one.parameters.map(\.bitPattern), "\(layout) parameters differ")
        }
    }

    func testDefaultModeLayoutsAgreeWithOneProcessWithinTolerance() throws {
        let one = try train(ParallelLayout(), deterministic: false)
        for layout in [ParallelLayout(dp: 2), ParallelLayout(tp: 2), ParallelLayout(pp: 2, microbatches: 4),
                       ParallelLayout(dp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2)] {
            let run = try train(layout, deterministic: false)
            for (a, b) in zip(run.losses, one.losses) { XCTAssertEqual(a, b, accuracy: 1e-5, "\(layout)") }
            let largest = zip(run.parameters, one.parameters).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(largest, 1e-4, "\(layout): largest parameter difference")
        }
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
