import ArgumentParser
import Foundation
import Parallelism
import Workflows
import Workload

extension PipelineSchedule.Kind: ExpressibleByArgument {}

/// Layout flags shared by `fleet plan` and `fleet train`.
struct LayoutOptions: ParsableArguments {
    @Option(help: "Data-parallel ranks (gradients averaged).")
    var dp: Int = 1

    @Option(help: "Tensor-parallel ranks (attention heads and MLP split, Megatron-style).")
    var tp: Int = 1

    @Option(help: "Pipeline stages (layers split into consecutive stages).")
    var pp: Int = 1

    @Option(help: "Micro-batches per step on each pipeline.")
    var microbatches: Int?

    @Option(help: "Pipeline schedule: gpipe or 1f1b.")
    var schedule: PipelineSchedule.Kind = .oneFOneB

    @Option(help: "ZeRO stage: 0 (replicated optimizer state) or 1 (sharded over the dp group).")
    var zero: Int = 0

    var layout: ParallelLayout {
        ParallelLayout(dp: dp, tp: tp, pp: pp, microbatches: microbatches ?? (pp > 1 ? 2 * pp : 1), schedule: schedule, zeroStage: zero)
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print and check a parallel layout and its pipeline schedule before running it.",
        discussion: "Example: fleet plan gpt-tiny --pp 4 --microbatches 8 --schedule 1f1b")

    @Argument(help: "Model: \(ModelCatalog.all.map(\.name).joined(separator: ", ")).")
    var model: String = "gpt-tiny"

    @OptionGroup var layoutOptions: LayoutOptions

    @Option(help: "Global batch (sequences per step).")
    var batch: Int = 8

    @Option(help: "Tokens per sequence (default: the model's context).")
    var seq: Int?

    @Option(help: "Bucket size of the data-parallel gradient sum (as fleet train --bucket).")
    var bucket: ByteSize = ByteSize(bytes: 1 << 20)

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        try Console.reportingErrors {
            guard let spec = ModelCatalog.named(model) else {
                throw ValidationError("unknown model \(model); choose from \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
            }
            let layout = layoutOptions.layout
            try layout.validate(model: spec, batch: batch)
            let schedule = layout.pipeline
            let report = try schedule.check()
            let mesh = layout.mesh
            let sequence = seq ?? spec.context
            guard (1...spec.context).contains(sequence) else {
                throw ValidationError("--seq \(sequence) must be between 1 and \(spec.name)'s context of \(spec.context) tokens")
            }
            guard bucket.bytes >= 4 else { throw ValidationError("--bucket must hold at least one float (4 bytes)") }
            let shards = ShardPlan(model: spec, layout: layout)
            let options = StepOptions(batch: batch, sequence: sequence, bucketBytes: bucket.bytes)
            let programs = (0..<mesh.worldSize).map { StepProgram(plan: shards, rank: $0, options: options) }
            if json {
                let object = PlanRecord.object(spec: spec, layout: layout, schedule: schedule, report: report, programs: programs)
                Console.out(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            PlanText.lines(spec: spec, layout: layout, batch: batch, report: report, programs: programs).forEach(Console.out)
        }
    }
}
