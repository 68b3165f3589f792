import Foundation
import Parallelism
import Workload

/// A layout's plan as the lines `fleet plan` prints: each rank's coordinates and groups, the
/// schedule per stage, its check and bubble, a timeline, and each rank's step program in sum.
public enum PlanText {
    public static func lines(spec: ModelSpec, layout: ParallelLayout, batch: Int, report: ScheduleReport, programs: [StepProgram]) -> [String] {
        let schedule = layout.pipeline, mesh = layout.mesh, stages = layout.stageLayers(model: spec)
        var lines: [String] = []
        lines.append("plan: \(spec.name) on \(layout) = \(layout.worldSize) ranks, global batch \(batch), "
            + "\(layout.microbatches) micro-batch(es) of \(layout.sequencesPerMicrobatch(batch: batch))\(layout.cp > 1 ? " sequences (1/\(layout.cp) of each one's positions a rank)" : "") per pipeline, schedule \(schedule.kind.rawValue)"
            + (schedule.virtualStages > 1 ? " with \(schedule.virtualStages) chunks per stage" : ""))
        lines.append("")
        // Under expert parallelism: each rank's expert-parallel group and the routed experts it holds.
        // Under context parallelism: the group sharing each sequence's positions.
        let experts = layout.ep > 1 ? [("ep group", 12), ("experts", 8)] : [], context = layout.cp > 1 ? [("cp group", 12)] : []
        let table = Table(columns: [("rank", 4), ("dp", 3), ("tp", 3), ("pp", 3), ("layers", 8), ("dp group", 12), ("tp group", 12), ("pp group", 12)]
                          + experts + context)
        lines.append(table.header())
        let plan = programs.first?.plan
        for rank in 0..<mesh.worldSize {
            let c = mesh.coordinates(of: rank)
            let layers = stages[c.pp].map { $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)–\($0.upperBound - 1)" }.joined(separator: ",")
            var row = [String(rank), "\(c.dp)", "\(c.tp)", "\(c.pp)", layers, "\(mesh.dpGroup(of: rank))", "\(mesh.tpGroup(of: rank))", "\(mesh.ppGroup(of: rank))"]
            if let plan, layout.ep > 1 {
                let held = plan.heldExperts(expertRank: c.dp % layout.ep)
                row += ["\(mesh.epGroup(of: rank))", held.count == 1 ? "\(held.lowerBound)" : "\(held.lowerBound)–\(held.upperBound - 1)"]
            }
            if layout.cp > 1 { row.append("\(mesh.cpGroup(of: rank))") }
            lines.append(table.row(row))
        }
        lines.append("")
        lines.append("schedule (per stage, one step):")
        for (s, program) in schedule.actions.enumerated() {
            lines.append("  stage \(s): " + program.filter(\.isCompute).map(\.description).joined(separator: " "))
        }
        lines.append("")
        lines.append("check: every send has its receive; the schedule cannot deadlock")
        let v = schedule.virtualStages
        lines.append(String(format: "bubble: %.1f%% of the step (ideal (p−1)/(%@m+p−1) = %.1f%%), forward = 1, backward = 2 units%@",
                            report.bubbleFraction * 100, v > 1 ? "V·" : "", report.idealBubbleFraction * 100, v > 1 ? " per micro-batch and stage" : ""))
        lines.append("peak in-flight activations per stage: \(report.peakInFlightActivations.map(String.init).joined(separator: ", ")) "
                     + (v > 1 ? "chunk passes (1/\(v) of a stage's micro-batch each)" : "micro-batch(es)"))
        let mib = { (bytes: Double) in String(format: "%.1f MiB", bytes / 1_048_576) }
        lines.append("memory per rank (fp32, the simulator's model; activations at the schedule's peak):")
        for m in PlanRecord.memory(spec: spec, layout: layout, report: report, options: programs.first!.options) {
            lines.append("  stage \(m.stage): weights \(mib(m.weights)), gradients \(mib(m.gradients)), optimizer \(mib(m.optimizer)), "
                         + "activations \(mib(m.activations)) = \(mib(m.total))")
        }
        lines.append("")
        lines.append(timeline(report, stages: schedule.stages, scale: Double(v)))
        lines.append("")
        lines.append(summary(programs))
        return lines
    }

    /// One line per rank: what its step program runs and moves (the ops are in --json). Under
    /// expert parallelism "dp MiB" includes the experts' buckets over their holders, and "a2a MiB"
    /// is the tokens' all-to-alls at the balanced load.
    static func summary(_ programs: [StepProgram]) -> String {
        let experts = (programs.first?.plan.layout.ep ?? 1) > 1
        let table = Table(columns: [("rank", 4), ("ops", 6), ("GFLOP", 9), ("tp MiB", 8), ("dp MiB", 8), ("pp MiB", 8)] + (experts ? [("a2a MiB", 8)] : [])
                          + [("buckets", 7), ("updates", 11)])
        var lines = ["step program per rank (fleet plan --json lists every op):", table.header()]
        for p in programs {
            let totals = p.totals
            let mib = { (bytes: Bytes?) in String(format: "%.2f", (bytes ?? .zero).mebibytes) }
            let data = (totals.collectiveBytes[.data] ?? .zero) + (totals.collectiveBytes[.expertData] ?? .zero)
            lines.append(table.row(["\(p.rank)", "\(p.ops.count)", String(format: "%.3f", totals.flops.gigaFLOPs), mib(totals.collectiveBytes[.tensor]),
                                    mib(data), mib(totals.sentBytes)] + (experts ? [mib(totals.collectiveBytes[.expert])] : [])
                                   + ["\(p.sync.buckets.count)", "\(totals.updated)"]))
        }
        return lines.joined(separator: "\n")
    }

    /// One character per time unit (per chunk pass's unit when `scale` is the chunks per
    /// stage): F or B, '.' when idle.
    static func timeline(_ report: ScheduleReport, stages: Int, scale: Double = 1) -> String {
        let width = Int((report.makespan * scale).rounded(.up))
        var rows = Array(repeating: Array(repeating: Character("."), count: width), count: stages)
        for span in report.timeline {
            let symbol = Character(String(span.action.prefix(1)).lowercased() == "f" ? "F" : "B")
            for t in Int((span.start * scale).rounded())..<Int((span.end * scale).rounded()) where t < width { rows[span.stage][t] = symbol }
        }
        return (0..<stages).map { "  stage \($0) |" + String(rows[$0]) + "|" }.joined(separator: "\n")
    }
}
