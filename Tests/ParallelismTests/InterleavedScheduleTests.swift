import Parallelism
import Workload
import XCTest

/// Interleaved 1F1B (Narayanan et al. 2021): V chunks per stage shrink the bubble to
/// (p − 1)/(V·m + p − 1); the chunks of a stage are every p-th slice of the model.
final class InterleavedScheduleTests: XCTestCase {
    func testInterleavedSchedulesAreSoundWithTheClosedFormBubble() throws {
        for p in 2...5 {
            for v in 2...4 {
                for m in stride(from: p, through: 4 * p, by: p) {
                    let schedule = PipelineSchedule(kind: .interleaved, stages: p, microbatches: m, virtualStages: v)
                    let report = try schedule.check()
                    let closedForm = Double(p - 1) / Double(v * m + p - 1)
                    XCTAssertEqual(report.idealBubbleFraction, closedForm, accuracy: 1e-12)
                    XCTAssertEqual(report.bubbleFraction, closedForm, accuracy: 1e-9, "p=\(p) V=\(v) m=\(m)")
                    // Every stage runs every chunk of every micro-batch once each way.
                    for program in schedule.actions {
                        XCTAssertEqual(program.filter(\.isCompute).count, 2 * m * v)
                    }
                    // Megatron's warm-up bounds the chunk passes a stage holds: the first stage the most.
                    let peak = report.peakInFlightActivations
                    XCTAssertEqual(peak[0], min(m * v, (p - 1) * 2 + (v - 1) * p + 1), "p=\(p) V=\(v) m=\(m)")
                    XCTAssertEqual(peak, peak.sorted(by: >), "earlier stages hold more")
                }
            }
        }
    }

    func testInterleavingShrinksTheBubbleOf1F1BByTheChunkCount() throws {
        let plain = try PipelineSchedule(kind: .oneFOneB, stages: 4, microbatches: 8).check()
        let interleaved = try PipelineSchedule(kind: .interleaved, stages: 4, microbatches: 8, virtualStages: 2).check()
        // Idle time (bubble × makespan) halves; the busy time is the same.
        XCTAssertEqual(interleaved.bubbleFraction * interleaved.makespan * 2, plain.bubbleFraction * plain.makespan, accuracy: 1e-9)
        XCTAssertLessThan(interleaved.bubbleFraction, plain.bubbleFraction)
    }

    func testChunksAreEveryPthSliceAndTheShardPlanFollowsThem() {
        let model = ModelCatalog.gptTiny   // 4 layers
        let layout = ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2)
        XCTAssertEqual(layout.chunkLayers(model: model), [0..<1, 1..<2, 2..<3, 3..<4])
        XCTAssertEqual(layout.stageLayers(model: model), [[0..<1, 2..<3], [1..<2, 3..<4]])
        XCTAssertEqual(layout.description, "pp2·v2")
        let plan = ShardPlan(model: model, layout: layout)
        XCTAssertEqual(plan.entry("h2.ln1.w")?.stages, [0])
        XCTAssertEqual(plan.entry("h3.ln1.w")?.stages, [1])
        XCTAssertEqual(plan.entry("lnf.w")?.stages, [1])
        // Each stage's parameters fall into separate runs of the buffer: one gradient segment per chunk.
        XCTAssertEqual(GradientSync(plan: plan, stage: 0, bucketElements: 1 << 30).segments.count, 2)
        // Without interleaving the plan is the one it always was.
        XCTAssertEqual(ParallelLayout(pp: 2).stageLayers(model: model), [[0..<2], [2..<4]])
    }

    func testStepProgramSendsOneMessagePerChunkBoundaryAndStartsBucketsPerChunk() {
        let model = ModelCatalog.gptTiny
        let layout = ParallelLayout(dp: 2, pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2)
        let plan = ShardPlan(model: model, layout: layout)
        let options = StepOptions(batch: 16, sequence: 64, bucketBytes: 1 << 30)
        let program = StepProgram(plan: plan, rank: 0, options: options)
        XCTAssertEqual(program.chunks, [0..<1, 2..<3])
        let last = StepProgram(plan: plan, rank: layout.mesh.rank(dp: 0, tp: 0, pp: 1), options: options)
        let rows = 16 / 2 / 4 * 64
        let messageBytes = Bytes(elements: rows * model.dModel, of: 4)
        // Stage 0 sends activations from chunks 0 and 2 … of virtual stages 0 and 2 (to 1 and 3),
        // and gradients from virtual stage 2 back to 1: 3 messages per micro-batch.
        XCTAssertEqual(program.totals.sentBytes, messageBytes * (3 * 4))
        // One bucket per chunk (a huge bucket size) on the last stage: chunk 1's (layer 3 and the
        // head) starts inside its last backward, before chunk 0's (layer 1) inside its own; the
        // tied embedding's copy waits for the sum with the first stage's, after the schedule.
        let starts = last.blocks.enumerated().compactMap { index, block -> Int? in
            block.ops.contains { if case .collective(_, .data, _) = $0 { return true } else { return false } } && block.phase != .optimizer && block.phase != .loss ? index : nil
        }
        let phases = starts.map { last.blocks[$0].phase }
        XCTAssertEqual(phases.map { phase -> Int? in if case let .schedule(action) = phase { return action.chunk } else { return nil } }, [1, 0, nil])
        XCTAssertEqual(phases.last, .gradientSync)
    }

    func testLayoutsThatCannotInterleaveAreRefusedWithWhatToChange() {
        let tiny = ModelCatalog.gptTiny
        func reason(_ layout: ParallelLayout, batch: Int = 8) -> String {
            do { try layout.validate(model: tiny, batch: batch); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(reason(ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2)), "")
        XCTAssertTrue(reason(ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 3)).contains("use --virtual-stages 2"))
        XCTAssertTrue(reason(ParallelLayout(pp: 2, microbatches: 3, schedule: .interleaved, virtualStages: 2), batch: 12).contains("multiple of 2"))
        XCTAssertTrue(reason(ParallelLayout(pp: 1, schedule: .interleaved, virtualStages: 2)).contains("--pp 2 or more"))
        XCTAssertTrue(reason(ParallelLayout(pp: 2, microbatches: 4, virtualStages: 2)).contains("needs --schedule interleaved"))
        XCTAssertTrue(reason(ParallelLayout(pp: 4, microbatches: 4, schedule: .interleaved, virtualStages: 2)).contains("no virtual-stage count"))
    }
}
