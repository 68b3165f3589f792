import Collectives
import Engine
import Foundation

/// One sweep point, formatted where it was simulated (so MPI ranks can send it to rank 0):
/// its table cells, its JSON record and its plot value.
public struct SweepRow: Codable, Sendable {
    public var cells: [String]
    public var note: String
    public var json: String
    public var label: String
    public var tokensPerSecond: Double
    /// The whole run's wall time, cost and carbon (nil without a budget, a price or a grid).
    public var trainSeconds: Double?, cost: Double?, carbonKg: Double?

    /// Extra columns a sweep of `base` shows: the whole run's time, cost and carbon when it has a budget.
    public static func runColumns(_ base: Scenario) -> [(title: String, width: Int)] {
        guard base.budget?.amount != nil else { return [] }
        return [("train time", 10)] + (base.budget?.gpuHour != nil ? [("cost", 14)] : []) + ((base.energy?.gridIntensity ?? 0) > 0 ? [("CO2e t", 9)] : [])
    }

    /// The row of a point with `values` (the swept keys) in a sweep of `base`: simulated (`s`,
    /// `r`), or refused with `problem`.
    public init(_ base: Scenario, _ values: [(key: String, value: String)], _ s: Scenario?, _ r: StepReport?, problem: String?) {
        var cells = values.map(\.value)
        if base.dataParallelAuto { cells.append(s.map { String($0.layout.dp) } ?? "—") }
        if let r {
            cells += [r.stepTime.description, String(format: "%.0f", r.tokensPerSecond), String(format: "%.1f%%", r.mfu * 100),
                      String(format: "%.1f%%", r.bubbleFraction * 100), String(format: "%.1f", r.memory.total / 1_073_741_824)]
        } else {
            cells += ["—", "—", "—", "—", "—"]
        }
        // Once per point: it may simulate the scenario's failures over days.
        let estimate = s.flatMap { s in r.map { RunEstimate(s, $0) } }
        if let s, let estimate, problem == nil, base.budget?.amount != nil {
            trainSeconds = estimate.time?.wallSeconds
            cost = estimate.time?.cost
            carbonKg = (s.energy?.gridIntensity ?? 0) > 0 ? estimate.run?.carbonKg : nil
        }
        for (title, _) in Self.runColumns(base) {
            switch title {
            case "train time": cells.append(trainSeconds.map { Units.duration($0) } ?? "—")
            case "cost": cells.append(cost.map(RunEstimateText.money) ?? "—")
            default: cells.append(carbonKg.map { String(format: "%.1f", $0 / 1000) } ?? "—")
            }
        }
        self.cells = cells
        note = problem.map { "does not run: " + $0 } ?? ""
        if let r, problem == nil, r.breakdown.dataStall > .zero {
            note = String(format: "storage-bound: the input pipeline stalls %@ (%.0f %% of the step)", r.breakdown.dataStall.description,
                          r.breakdown.dataStall.seconds / r.stepTime.seconds * 100)
        }
        json = JSONLine.encode(SimulationRecord.step(values, s, r, estimate: estimate, problem: problem))
        label = values.map { "\($0.key)\($0.value)" }.joined(separator: " ")
        tokensPerSecond = problem == nil ? r?.tokensPerSecond ?? 0 : 0
    }

    /// Sends this rank's rows to rank 0, which returns all of them (other ranks get nil).
    public static func gather(_ rows: [Int: SweepRow], over transport: Transport) throws -> [Int: SweepRow]? {
        guard let all = try Communicator(world: transport).gather(bytes: Array(try JSONEncoder().encode(rows))) else { return nil }
        return try all.reduce(into: [Int: SweepRow]()) { merged, bytes in
            merged.merge(try JSONDecoder().decode([Int: SweepRow].self, from: Data(bytes))) { mine, _ in mine }
        }
    }
}

/// A simulated step and a reliability run as the lines `fleet simulate` prints.
public enum SimulationText {
    /// The scenario, the layout, step time and throughput, the slowest stage's breakdown, memory, busiest links, fidelity.
    public static func step(_ s: Scenario, _ r: StepReport, wall: Duration) -> [String] {
        let l = s.layout
        var lines = ["scenario \(s.name): \(s.summary)"]
        lines.append("layout \(l), \(l.microbatches) micro-batch(es), \(l.schedule.rawValue), ZeRO \(s.zero), recompute \(s.recompute.rawValue); "
            + "batch \(s.batch) × \(s.sequence) tokens, " + (s.device.calibration.map {
                "kernels at their measured rates (\($0.gemm.count) sgemm shapes, \($0.cores) cores\($0.pinned ? ", ranks pinned" : ""))"
            } ?? "\(s.precision.rawValue) at \(Int(s.efficiency * 100)) % of peak"))
        lines.append(String(format: "step time %@   %.0f tokens/s   MFU %.1f %%", r.stepTime.description, r.tokensPerSecond, r.mfu * 100))
        let b = r.breakdown, step = r.stepTime.seconds
        func line(_ name: String, _ t: SimTime, _ note: String = "") {
            lines.append("  " + name.padding(toLength: 18, withPad: " ", startingAt: 0) + t.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                + String(format: "%5.1f %%", t.seconds / step * 100) + note)
        }
        lines.append("breakdown of the slowest stage:")
        line("compute", b.compute)
        line("tensor-parallel", b.tensorParallel)
        if s.layout.ep > 1 { line("expert all-to-all", b.expertAllToAll) }
        if s.layout.cp > 1 { line("ring attention", b.contextParallel, "   (the K/V ring traffic its attention kernels did not hide)") }
        line("pipeline wait", b.pipelineWait, String(format: "   (bubble: %.1f %% of all stages' time)", r.bubbleFraction * 100))
        line("dp exposed", b.dataParallelExposed)
        line("optimizer", b.optimizer)
        if let data = s.data {
            line("data stall", b.dataStall, "   (reading a batch of \(Units.bytes(data.batchBytes(s))) takes \(data.readTime(s)) on \(data.readers(s)) reading node(s)"
                 + (data.cacheHitRate > 0 ? String(format: ", %.0f %% from their caches", data.cacheHitRate * 100) : "") + "; the loader hides it behind the step)")
        }
        line("checkpoint", b.checkpoint, b.checkpointContention > .zero
             ? "   (stall per step; each async write of \(b.checkpointWrite) slows data-parallel traffic by \(b.checkpointContention) in all)" : "   (stall per step)")
        let m = r.memory, gib = Units.bytes
        lines.append("memory per GPU (stage \(m.stage)): \(gib(m.total)) of \(gib(s.device.memoryBytes)) — weights \(gib(m.weights)), gradients \(gib(m.gradients)), "
            + "optimizer \(gib(m.optimizer)), activations \(gib(m.activations))")
        if !r.busiestLinks.isEmpty {
            lines.append("busiest links: " + r.busiestLinks.map { "\($0.link) \(Units.bytes($0.bytes)) (" + String(format: "%.0f %%)", $0.utilization * 100) }.joined(separator: ", "))
        }
        if !r.collectiveChoices.isEmpty { lines.append("collectives (auto): " + r.collectiveChoices.joined(separator: "; ")) }
        if let path = r.criticalPath {
            lines.append("critical path: \(path)")
            for d in r.elementDelays { lines.append(String(format: "  %@ alone: +%@ per step", d.element, d.delay.description)) }
        }
        lines.append("fidelity: \(r.fidelity); \(r.reductions); \(r.events.formatted()) events in \(String(format: "%.1f ms", wall.seconds * 1000))")
        return lines
    }

    /// Goodput over the scenario's duration, what the failures cost, and the interval sweep.
    public static func reliability(_ s: Scenario, seed: UInt64, _ model: ReliabilityModel, _ r: ReliabilityReport,
                                   sweep: (reports: [ReliabilityReport], best: ReliabilityReport)?, step: StepReport, elapsed: Double) -> [String] {
        let hours = Units.duration
        let share = { (x: Double) in String(format: "%.1f %%", x / model.duration * 100) }
        let steps = r.useful / step.stepTime.seconds
        var lines = ["reliability over \(hours(model.duration)) (seed \(seed)): cluster MTBF \(hours(model.clusterMTBF)) = 1/Σ(nᵢ/MTTFᵢ) over "
            + model.components.map { "\($0.count.formatted()) \($0.name)" }.joined(separator: ", ")]
        lines.append("  checkpoint every \(hours(model.checkpointInterval)) (\(model.checkpointing.rawValue); Young–Daly √(2·δ·MTBF) = \(hours(model.youngDalyInterval))), "
            + "write \(hours(model.checkpointWrite)), stall \(hours(model.checkpointStall)), reload \(hours(model.reload)) of \(Units.bytes(s.checkpointBytes))"
            + (step.breakdown.checkpointContention > .zero ? " (the stall includes \(step.breakdown.checkpointContention) of training traffic slowed by the write)" : ""))
        lines.append(String(format: "  failure statistics: P(at least one failure in %@) = %.4f, in a day %.4f, in an hour %.4f; %.1f expected in the run",
                            hours(model.duration), model.failureProbability(within: model.duration), model.failureProbability(within: 86400),
                            model.failureProbability(within: 3600), model.expectedFailures(within: model.duration))
                     + "; by part: " + model.failureShares.sorted { $0.share > $1.share }.map { String(format: "%@ %.0f %% (MTBF %@)", $0.name, $0.share * 100, hours($0.mtbf)) }.joined(separator: ", "))
        lines.append(String(format: "  goodput %.3f (useful training time / wall time), %.0f steps of %@", r.goodput, steps, step.stepTime.description))
        lines.append("  \(r.failures) failures: " + r.failuresByComponent.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        lines.append("  time lost: rework \(hours(r.rework)) (\(share(r.rework))), restarts \(hours(r.restart)) (\(share(r.restart)); "
            + "of which waiting for repairs \(hours(r.repairWait))), checkpoint stalls \(hours(r.checkpointStalls)) (\(share(r.checkpointStalls))), "
            + "stragglers \(hours(r.stragglers)) (\(share(r.stragglers)))"
            + (r.maintenance > 0 ? ", maintenance \(hours(r.maintenance)) (\(share(r.maintenance)))" : "")
            + (r.preemptions > 0 ? ", preemptions \(hours(r.preemptions)) (\(share(r.preemptions)))" : ""))
        if let sweep {
            lines.append("  checkpoint interval sweep (the same failures for every interval):")
            for report in sweep.reports {
                lines.append(String(format: "    %10@  goodput %.4f  rework %@  stalls %@%@", hours(report.interval), report.goodput, hours(report.rework),
                                    hours(report.checkpointStalls), report.interval == sweep.best.interval ? "  ← best" : ""))
            }
            lines.append("  best interval \(hours(sweep.best.interval)), Young–Daly \(hours(model.youngDalyInterval))")
        }
        lines.append(String(format: "  simulated in %.2f s", elapsed))
        return lines
    }
}

/// Quantities written the way fleet prints them.
public enum Units {
    /// Seconds as hours, minutes or seconds, whichever reads best.
    public static func duration(_ x: Double) -> String {
        x >= 7200 ? String(format: "%.1f h", x / 3600) : x >= 120 ? String(format: "%.1f min", x / 60) : String(format: "%.1f s", x)
    }

    /// Bytes per second in decimal units (as links are sold), sized to the value.
    public static func bandwidth(_ value: Double) -> String {
        value >= 1e12 ? String(format: "%.1f TB/s", value / 1e12) : String(format: "%.1f GB/s", value / 1e9)
    }

    /// Bytes in binary units sized to the value.
    public static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = value, i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }
}
