import Collectives
import Engine
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// ZeRO-2 and ZeRO-3 on the in-process transport: the same numbers as one process (bitwise
/// in deterministic mode), and the memory each rank holds — counted and as the kernel reports
/// its pages — against the simulator's memory model for the same layout.
final class ZeROTests: XCTestCase {
    let layouts = [ParallelLayout(dp: 2, zeroStage: 2), ParallelLayout(dp: 2, zeroStage: 3), ParallelLayout(dp: 4, zeroStage: 3),
                   ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 4, zeroStage: 3),
                   ParallelLayout(dp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2, zeroStage: 3)]

    func testDeterministicZeROLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess(layouts + [ParallelLayout(dp: 2, zeroStage: 1)])
    }

    func testDefaultModeZeROLayoutsAgreeWithOneProcessWithinTolerance() throws {
        try InProcessTraining.assertCloseToOneProcess(layouts)
    }

    /// Every rank's state after one step, by rank.
    func state(_ layout: ParallelLayout) throws -> [StateBytes] {
        let c = InProcessTraining.configuration(deterministic: false)
        let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(120)) { transport -> StateBytes in
            let trainer = try DistributedTrainer(configuration: c, layout: layout, transport: transport, corpus: .builtIn())
            _ = try trainer.trainStep(0)
            return trainer.lastStateBytes
        }
        return try results.map { try $0.get() }
    }

    /// The memory model's parameters + gradients + optimizer state on the most loaded stage, at fp32.
    func modelled(_ layout: ParallelLayout) -> Double {
        let c = InProcessTraining.configuration(deterministic: false)
        return MemoryModel.stages(model: c.model, layout: layout, zero: layout.zeroStage, microbatchSequences: 1, sequence: c.sequence,
                                  precision: .fp32, recompute: .none, inFlight: [])
            .map { $0.weights + $0.gradients + $0.optimizer }.max()!
    }

    func testEachRankHoldsWhatTheMemoryModelPredicts() throws {
        let dp4 = ParallelLayout(dp: 4)
        for layout in [ParallelLayout(), dp4, ParallelLayout(pp: 2, microbatches: 2), ParallelLayout(dp: 4, zeroStage: 1),
                       ParallelLayout(dp: 4, zeroStage: 2)] + layouts {
            let ranks = try state(layout), largest = Double(ranks.map(\.held).max()!), model = modelled(layout)
            // The model divides by dp; blocks are whole elements, the first ranks' one larger per bucket.
            XCTAssertEqual(largest, model, accuracy: model * 1e-3, "\(layout): held \(largest) vs modelled \(model)")
            guard layout.tp == 1 else { continue }   // a row-split shard's pieces are narrower than a page
            for (rank, state) in ranks.enumerated() {
                // What the rank keeps is what occupies memory: no more than a few pages per kept range beyond it.
                XCTAssertLessThanOrEqual(Double(state.resident), Double(state.held) * 1.03 + 256 * 1024, "\(layout) rank \(rank): resident \(state.resident), held \(state.held)")
                XCTAssertGreaterThanOrEqual(Double(state.resident), Double(state.held) * 0.97, "\(layout) rank \(rank): resident \(state.resident), held \(state.held)")
            }
        }
        // ZeRO-3 over four ranks: a quarter of what each rank holds without ZeRO.
        let full = try state(dp4).map(\.resident).max()!, sharded = try state(ParallelLayout(dp: 4, zeroStage: 3)).map(\.resident).max()!
        XCTAssertLessThanOrEqual(Double(sharded), 0.35 * Double(full), "ZeRO-3 dp4 holds \(sharded) bytes per rank against \(full)")
    }

    /// With several micro-batches the gradient accumulates unsharded until the last backward
    /// pass reduce-scatters it: the step's peak shows what the state at its end does not.
    func testThePeakShowsGradientsAccumulatingAcrossMicroBatches() throws {
        let one = try state(ParallelLayout(dp: 2, zeroStage: 2)), four = try state(ParallelLayout(dp: 2, microbatches: 4, zeroStage: 2))
        for (rank, s) in one.enumerated() {
            XCTAssertEqual(s.peakResident, s.resident, "one micro-batch, rank \(rank): its buckets are let go as the backward pass ends")
        }
        for (rank, s) in four.enumerated() {
            XCTAssertEqual(s.resident, one[rank].resident, "the same state at the end of the step, rank \(rank)")
            // Between micro-batches a rank holds its whole gradient (4 bytes a parameter) instead of its half.
            XCTAssertGreaterThan(Double(s.peakResident), Double(s.resident) * 1.15, "rank \(rank): peak \(s.peakResident), at the end \(s.resident)")
        }
    }

    /// A page-backed buffer gives released pages back and reads zero there; the edges that
    /// share a page with kept elements are zeroed but stay.
    func testReleasedPagesLeaveMemoryAndReadZero() {
        let buffer = FloatBuffer(pageBackedCount: 1 << 16)
        XCTAssertEqual(buffer.residentBytes, 0, "nothing written, nothing held")
        buffer.buffer.update(repeating: 1)
        XCTAssertEqual(buffer.residentBytes, 1 << 18)
        buffer.release([100..<(1 << 16)])
        XCTAssertLessThanOrEqual(buffer.residentBytes, 4096, "only the first page stays")
        XCTAssertEqual(buffer[99], 1)
        XCTAssertEqual(buffer[100], 0)
        XCTAssertEqual(buffer[(1 << 16) - 1], 0)
    }
}
