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
            let stages = layout.stageLayers(model: spec)
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
            Console.out("plan: \(spec.name) on \(layout) = \(layout.worldSize) ranks, global batch \(batch), "
                + "\(layout.microbatches) micro-batch(es) of \(batch / layout.dp / layout.microbatches) per pipeline, schedule \(schedule.kind.rawValue)")
            Console.out("")
            let table = Table(columns: [("rank", 4), ("dp", 3), ("tp", 3), ("pp", 3), ("layers", 8), ("dp group", 12), ("tp group", 12), ("pp group", 12)])
            Console.out(table.header())
            for rank in 0..<mesh.worldSize {
                let c = mesh.coordinates(of: rank)
                let layers = stages[c.pp]
                Console.out(table.row(["\(rank)", "\(c.dp)", "\(c.tp)", "\(c.pp)", "\(layers.lowerBound)–\(layers.upperBound - 1)",
                                       "\(mesh.dpGroup(of: rank))", "\(mesh.tpGroup(of: rank))", "\(mesh.ppGroup(of: rank))"]))
            }
            Console.out("")
            Console.out("schedule (per stage, one step):")
            for (s, program) in schedule.actions.enumerated() {
                Console.out("  stage \(s): " + program.filter(\.isCompute).map(\.description).joined(separator: " "))
            }
            Console.out("")
            Console.out("check: every send has its receive; the schedule cannot deadlock")
            Console.out(String(format: "bubble: %.1f%% of the step (ideal (p−1)/(m+p−1) = %.1f%%), forward = 1, backward = 2 units",
                               report.bubbleFraction * 100, report.idealBubbleFraction * 100))
            Console.out("peak in-flight activations per stage: \(report.peakInFlightActivations.map(String.init).joined(separator: ", ")) micro-batch(es)")
            Console.out("")
            Console.out(timeline(report, stages: schedule.stages))
            Console.out("")
            Console.out(summary(programs))
        }
    }

    /// One line per rank: what its step program runs and moves (the ops are in --json).
    private func summary(_ programs: [StepProgram]) -> String {
        let table = Table(columns: [("rank", 4), ("ops", 6), ("GFLOP", 9), ("tp MiB", 8), ("dp MiB", 8), ("pp MiB", 8), ("buckets", 7), ("updates", 11)])
        var lines = ["step program per rank (fleet plan --json lists every op):", table.header()]
        for p in programs {
            let totals = p.totals
            let mib = { (bytes: Int?) in String(format: "%.2f", Double(bytes ?? 0) / 1_048_576) }
            lines.append(table.row(["\(p.rank)", "\(p.ops.count)", String(format: "%.3f", totals.flops / 1e9), mib(totals.collectiveBytes[.tensor]),
                                    mib(totals.collectiveBytes[.data]), mib(totals.sentBytes), "\(p.sync.buckets.count)", "\(totals.updated)"]))
        }
        return lines.joined(separator: "\n")
    }

    /// One character per time unit: F/B with the micro-batch's last digit, '.' when idle.
    private func timeline(_ report: ScheduleReport, stages: Int) -> String {
        let width = Int(report.makespan.rounded(.up))
        var rows = Array(repeating: Array(repeating: Character("."), count: width), count: stages)
        for span in report.timeline {
            let symbol = Character(String(span.action.prefix(1)).lowercased() == "f" ? "F" : "B")
            for t in Int(span.start)..<Int(span.end) where t < width { rows[span.stage][t] = symbol }
        }
        return (0..<stages).map { "  stage \($0) |" + String(rows[$0]) + "|" }.joined(separator: "\n")
    }
}
