import Collectives
import Engine
import OpLog
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// The step plan against what the trainer really issues in a step, recorded at the BLAS call.
final class StepProgramTests: XCTestCase {
    func testOneProcessRunsThePlanOpForOp() throws { try assertRanThePlan(ParallelLayout()) }

    /// The whole-model `Trainer` (no communicators) runs the same products as one rank of the plan.
    func testTheSingleProcessTrainerRunsThePlansProducts() throws {
        let model = ModelCatalog.gptTiny
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = 2
        configuration.steps = 1
        configuration.threads = 1
        let trainer = try Trainer(configuration: configuration, corpus: .builtIn())
        let log = OpLog()
        OpLog.with(log) { _ = trainer.trainStep(0) }
        let program = StepProgram(plan: ShardPlan(model: model, layout: ParallelLayout()), rank: 0,
                                  options: StepOptions(batch: 2, sequence: configuration.sequence))
        XCTAssertEqual(log.ops.filter { $0.kind == "matmul" }.map(line), program.ops.filter { $0.kind == "matmul" }.map { line($0, stages: 1) })
        let logged = log.ops.count
        _ = trainer.trainStep(1)
        XCTAssertEqual(log.ops.count, logged, "nothing is logged once the log is uninstalled")
    }

    /// Each rank's plan and what it ran in one step of `layout`, every rank a thread of this
    /// process over the in-process transport, with small buckets (several per stage).
    func recordedStep(_ layout: ParallelLayout, batch: Int = 8, model: ModelSpec = ModelCatalog.gptTiny) throws -> [(plan: StepProgram, ran: [LoggedOp])] {
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = batch
        configuration.steps = 1
        configuration.threads = 1
        let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(120)) { transport -> (StepProgram, [LoggedOp]) in
            let trainer = try DistributedTrainer(configuration: configuration, layout: layout, transport: transport, corpus: .builtIn())
            trainer.bucketBytes = 64 << 10
            let log = OpLog()
            _ = try OpLog.with(log) { try trainer.trainStep(0) }
            return (trainer.program, log.ops)
        }
        return try results.map { try $0.get() }
    }

    /// An operation as a line both sides can print: kind and sizes, group, message tag.
    func line(_ op: StepOp, stages: Int) -> String {
        switch op {
        case let .matmul(g): return "matmul \(g.m)x\(g.n)x\(g.k)\(g.transA ? " At" : "")\(g.transB ? " Bt" : "")"
        case let .kernel(kind, elements, flops): return "\(kind.rawValue) \(elements) \(Int(flops.count))"
        case let .collective(kind, group, bytes): return "\(kind.rawValue) \(group.rawValue) \(bytes.count)"
        case let .send(message, bytes): return "send pipeline \(bytes.count) #\(message.tag(stages: stages))"
        case let .receive(message, bytes): return "recv pipeline \(bytes.count) #\(message.tag(stages: stages))"
        case let .optimizer(parameters): return "optimizer \(parameters)"
        }
    }

    func line(_ op: LoggedOp) -> String {
        switch op.kind {
        case "matmul": return "matmul \(op.m)x\(op.n)x\(op.k)\(op.transA ? " At" : "")\(op.transB ? " Bt" : "")"
        case "send", "recv": return "\(op.kind) \(op.group) \(op.bytes) #\(op.tag)"
        case "allreduce", "reduce_scatter", "all_gather", "alltoall": return "\(op.kind) \(op.group) \(op.bytes)"
        case "optimizer": return "optimizer \(op.elements)"
        default: return "\(op.kind) \(op.elements) \(Int(op.flops))"
        }
    }

    /// An MoE block's experts run between its dispatch and combine (backward: between the
    /// combine's backward and the dispatch): their row counts depend on the routing, so only
    /// their kinds are compared there.
    func maskingExperts(_ lines: [String]) -> [String] {
        var inside = false
        return lines.map { line in
            let kind = String(line.prefix { $0 != " " })
            switch kind {
            case "moe_dispatch": inside.toggle()   // opens the experts forward, closes them backward
            case "moe_combine": inside = false
            case "moe_combine_backward": inside = true
            default: break
            }
            return inside && !kind.hasPrefix("moe_") ? kind + (line.contains(" At") ? " At" : "") : line
        }
    }

    func assertRanThePlan(_ layout: ParallelLayout, model: ModelSpec = ModelCatalog.gptTiny,
                          file: StaticString = #filePath, line number: UInt = #line) throws {
        for (rank, step) in try recordedStep(layout, model: model).enumerated() {
            let planned = maskingExperts(step.plan.ops.map { line($0, stages: layout.pipeline.virtualStageCount) })
            let ran = maskingExperts(step.ran.map(line))
            if planned != ran {
                let first = zip(planned, ran).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(planned.count, ran.count)
                XCTFail("\(layout) rank \(rank): op \(first) of \(planned.count) planned / \(ran.count) ran differs: "
                        + "plan \(first < planned.count ? planned[first] : "—"), ran \(first < ran.count ? ran[first] : "—")",
                        file: file, line: number)
            }
            XCTAssertTrue(ran.contains { $0.hasPrefix("optimizer") } && ran.contains { $0.hasPrefix("matmul") }, "a whole step was recorded", file: file, line: number)
        }
    }

    func testDataParallelRunsThePlanOpForOp() throws { try assertRanThePlan(ParallelLayout(dp: 2)) }
    func testTensorParallelRunsThePlanOpForOp() throws { try assertRanThePlan(ParallelLayout(tp: 2)) }
    func testPipelineRunsThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(pp: 2, microbatches: 4))
        try assertRanThePlan(ParallelLayout(pp: 2, microbatches: 4, schedule: .gpipe))
    }
    func testAllThreeRunThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2))
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, schedule: .gpipe))
    }
    func testInterleavedRunsThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2))
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2, zeroStage: 1))
    }
    func testZeROOneRunsThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(dp: 2, zeroStage: 1))
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, zeroStage: 1))
    }

    func testZeROTwoAndThreeRunThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(dp: 2, zeroStage: 2))
        try assertRanThePlan(ParallelLayout(dp: 2, zeroStage: 3))
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, zeroStage: 3))
        try assertRanThePlan(ParallelLayout(dp: 2, pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2, zeroStage: 3))
    }

    /// A plan that differs from what runs is caught: the same step against another layout's plan.
    func testSequenceParallelRunsThePlanOpForOp() throws {
        try assertRanThePlan(ParallelLayout(tp: 2, sequenceParallel: true))
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, sequenceParallel: true))
        try assertRanThePlan(ParallelLayout(tp: 2, pp: 2, microbatches: 2, schedule: .interleaved, virtualStages: 2, sequenceParallel: true))
    }

    /// Ring attention: each attention's K/V pass is the plan's all-gather, each backward its
    /// all-gather again and the K/V gradients' reduce-scatter; every product on the held rows.
    func testContextParallelRunsThePlanOpForOp() throws {
        var balanced = ParallelLayout(dp: 4, cp: 2)
        balanced.contextBalanced = true
        try assertRanThePlan(ParallelLayout(dp: 2, cp: 2))
        try assertRanThePlan(balanced)
        try assertRanThePlan(ParallelLayout(dp: 2, tp: 2, pp: 2, microbatches: 2, cp: 2))
    }

    func testMixtureOfExpertsRunsThePlanOpForOp() throws {
        let moe = ModelCatalog.gptTinyMoE
        try assertRanThePlan(ParallelLayout(), model: moe)
        try assertRanThePlan(ParallelLayout(dp: 2, pp: 2, microbatches: 2), model: moe)
        // Expert parallelism: the all-to-alls around the experts, the experts' buckets over their holders.
        try assertRanThePlan(ParallelLayout(dp: 4, ep: 2), model: moe)
        try assertRanThePlan(ParallelLayout(dp: 2, pp: 2, microbatches: 2, ep: 2), model: moe)
        try assertRanThePlan(ParallelLayout(dp: 4, zeroStage: 3, ep: 2), model: moe)
        try assertRanThePlan(ParallelLayout(dp: 4, zeroStage: 1, ep: 4), model: moe)
        // The experts' products are the only ones marked routed, and together take every kept token.
        let step = try recordedStep(ParallelLayout(), model: moe)[0]
        let routed = step.ran.filter(\.routed)
        XCTAssertFalse(routed.isEmpty)
        XCTAssertTrue(routed.allSatisfy { $0.kind == "matmul" || $0.kind.hasPrefix("gelu") || $0.kind == "residual" })
        let inputs = routed.filter { $0.kind == "matmul" && $0.n == 256 && $0.k == 128 && $0.transB }
        XCTAssertEqual(inputs.count, 2 * 8, "one input product per expert and block")
        XCTAssertEqual(inputs.reduce(0) { $0 + $1.m }, 2 * 8 * 128 * 2, "every token's two choices (no capacity: none dropped)")
    }

    func testADifferentPlanIsCaught() throws {
        let ran = try recordedStep(ParallelLayout(dp: 2))[0].ran.map(line)
        let other = StepProgram(plan: ShardPlan(model: ModelCatalog.gptTiny, layout: ParallelLayout(dp: 2)), rank: 0,
                                options: StepOptions(batch: 8, sequence: 128, bucketBytes: 1 << 20)).ops.map { line($0, stages: 1) }
        XCTAssertNotEqual(ran, other, "1 MiB buckets are not the 64 KiB buckets that ran")
    }
}
