import ArgumentParser
import Foundation
import Parallelism
import Workflows
import Workload

extension PipelineSchedule.Kind: ExpressibleByArgument {}

/// Layout flags shared by `fleet plan` and `fleet train`.
struct LayoutOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Data-parallel ranks (gradients averaged).")
    var dp: Int = 1

    @Option(parsing: .unconditional, help: "Tensor-parallel ranks (attention heads and MLP split, Megatron-style).")
    var tp: Int = 1

    @Option(parsing: .unconditional, help: "Pipeline stages (layers split into consecutive stages).")
    var pp: Int = 1

    @Option(parsing: .unconditional, help: "Expert-parallel ranks, carved from --dp: each group of this many dp ranks splits a mixture of experts' experts and trades tokens by all-to-all.")
    var ep: Int = 1

    @Option(parsing: .unconditional, help: "Context-parallel ranks (ring attention), carved from --dp: each group of this many dp ranks splits the same sequences' positions and passes K/V blocks round a ring.")
    var cp: Int = 1

    @Flag(name: [.customLong("cp-balance")], inversion: .prefixedNo,
          help: "Causal load balancing with --cp: each rank holds a front and a back chunk of every sequence (2 × --cp chunks), so causal attention costs every rank the same.")
    var contextBalanced = false

    @Option(parsing: .unconditional, help: "Micro-batches per step on each pipeline.")
    var microbatches: Int?

    @Option(help: "Pipeline schedule: gpipe, 1f1b or interleaved (1f1b over --virtual-stages chunks per stage).")
    var schedule: PipelineSchedule.Kind = .oneFOneB

    @Option(name: .customLong("virtual-stages"), parsing: .unconditional,
            help: "Model chunks per pipeline stage under --schedule interleaved (default 2 there, 1 otherwise).")
    var virtualStages: Int?

    @Option(parsing: .unconditional, help: "ZeRO stage, sharded over the dp group: 0 (nothing), 1 (optimizer state), 2 (and gradients) or 3 (and weights, gathered per layer).")
    var zero: Int = 0

    @Flag(name: [.customLong("sequence-parallel")], inversion: .prefixedNo,
          help: "Sequence parallelism with --tp: LayerNorms, residuals and stage boundaries hold 1/tp of each sequence; all-gather/reduce-scatter replace the tensor all-reduces.")
    var sequenceParallel = false

    /// The largest degree or micro-batch count a flag takes: beyond it no layout describes a
    /// real run, and products such as dp × tp × pp must stay far from overflowing.
    static let degreeLimit = 1 << 20

    func validate() throws {
        for (flag, value) in [("--dp", dp), ("--tp", tp), ("--pp", pp), ("--ep", ep), ("--cp", cp), ("--microbatches", microbatches ?? 1), ("--virtual-stages", virtualStages ?? 1)]
            where !(1...Self.degreeLimit).contains(value) {
            throw ValidationError("\(flag) must be between 1 and \(Self.degreeLimit) (got \(value))")
        }
    }

    var layout: ParallelLayout {
        var layout = ParallelLayout(dp: dp, tp: tp, pp: pp, microbatches: microbatches ?? ParallelLayout.defaultMicrobatches(pp: pp), schedule: schedule,
                                    virtualStages: virtualStages ?? ParallelLayout.defaultVirtualStages(schedule), zeroStage: zero,
                                    sequenceParallel: sequenceParallel, ep: ep, cp: cp)
        layout.contextBalanced = contextBalanced
        return layout
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

    /// The most ranks `fleet plan` lists one by one (the simulator takes larger fleets).
    static let rankLimit = 65_536

    /// The model, layout and schedule check this command's flags describe, refused before any
    /// program is built when they do not fit together.
    func preflight() throws -> (spec: ModelSpec, layout: ParallelLayout, report: ScheduleReport, sequence: Int) {
        guard let spec = ModelCatalog.named(model) else {
            throw ValidationError("unknown model \(model); choose from \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
        }
        guard (1...(1 << 24)).contains(batch) else { throw ValidationError("--batch must be between 1 and 16,777,216 sequences (got \(batch))") }
        let layout = layoutOptions.layout
        try layout.validate(model: spec, batch: batch)
        guard layout.worldSize <= Self.rankLimit else {
            throw ValidationError("fleet plan lists every rank's program; \(layout.worldSize) ranks is more than \(Self.rankLimit): "
                                  + "use fleet simulate for a fleet this size")
        }
        let sequence = seq ?? spec.context
        guard (1...spec.context).contains(sequence) else {
            throw ValidationError("--seq \(sequence) must be between 1 and \(spec.name)'s context of \(spec.context) tokens")
        }
        try layout.validate(model: spec, batch: batch, sequence: sequence)
        guard bucket.bytes >= 4 else { throw ValidationError("--bucket must hold at least one float (4 bytes)") }
        return (spec, layout, try layout.pipeline.check(), sequence)
    }

    func run() throws {
        try Console.reportingErrors {
            let (spec, layout, report, sequence) = try preflight()
            let shards = ShardPlan(model: spec, layout: layout)
            let options = StepOptions(batch: batch, sequence: sequence, bucketBytes: bucket.bytes)
            let programs = (0..<layout.worldSize).map { StepProgram(plan: shards, rank: $0, options: options) }
            if json {
                let object = PlanRecord.object(spec: spec, layout: layout, schedule: layout.pipeline, report: report, programs: programs)
                Console.out(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            PlanText.lines(spec: spec, layout: layout, batch: batch, report: report, programs: programs).forEach(Console.out)
        }
    }
}
