import Collectives
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// The distributed trainer on the in-process transport, every rank a thread of this process.
enum InProcessTraining {
    static let steps = 4

    static func configuration(deterministic: Bool, model: ModelSpec = ModelCatalog.gptTiny, batch: Int = 8) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: model)
        c.batch = batch
        c.sequence = 64
        c.steps = Self.steps
        c.threads = 1
        c.deterministic = deterministic
        return c
    }

    /// Per-step losses (from the reporting rank) and the gathered final parameters of `layout`.
    static func train(_ layout: ParallelLayout, deterministic: Bool, context: ExecutionContext = ExecutionContext(),
               threads: [Int]? = nil, model: ModelSpec = ModelCatalog.gptTiny, batch: Int = 8) throws -> (losses: [Float], parameters: [Float]) {
        let c = Self.configuration(deterministic: deterministic, model: model, batch: batch)
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

    /// Deterministic mode: each layout's losses and final parameters bit for bit one process's.
    static func assertBitwiseOneProcess(_ layouts: [ParallelLayout], model: ModelSpec = ModelCatalog.gptTiny,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        try splitInvariantKernel()
        let one = try train(ParallelLayout(), deterministic: true, model: model)
        for layout in layouts {
            let run = try train(layout, deterministic: true, model: model)
            XCTAssertEqual(run.losses.map(\.bitPattern), one.losses.map(\.bitPattern), "\(layout) losses", file: file, line: line)
            XCTAssertTrue(run.parameters.map(\.bitPattern) == one.parameters.map(\.bitPattern), "\(layout) parameters differ", file: file, line: line)
        }
    }

    /// Default mode: each layout's losses within 1e-5 of one process's, its parameters within 1e-4.
    static func assertCloseToOneProcess(_ layouts: [ParallelLayout], model: ModelSpec = ModelCatalog.gptTiny, batch: Int = 8,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let one = try train(ParallelLayout(), deterministic: false, model: model, batch: batch)
        for layout in layouts {
            let run = try train(layout, deterministic: false, model: model, batch: batch)
            for (a, b) in zip(run.losses, one.losses) { XCTAssertEqual(a, b, accuracy: 1e-5, "\(layout)", file: file, line: line) }
            let largest = zip(run.parameters, one.parameters).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(largest, 1e-4, "\(layout): largest parameter difference", file: file, line: line)
        }
    }

    static func splitInvariantKernel() throws {
        if let failure = BLASKernelCheck.splitInvariance() {
            throw XCTSkip("OpenBLAS kernel \(BLAS.coreName) in this test process computes other bits in pieces (\(failure))")
        }
    }

}
