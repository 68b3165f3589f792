import ArgumentParser
import Collectives
import Engine
import Foundation
import Parallelism
import Workflows

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a training step on a cluster described by a YAML scenario (compute, fabric, collectives, storage, memory).",
        discussion: """
        Examples:
          fleet simulate scenarios/gpt3-175b-h100.yaml
          fleet simulate scenarios/llama-70b-sweep.yaml --plot sweep.svg
          fleet simulate scenarios/gpt3-175b-h100.yaml --json --trace step.json
        """)

    @Argument(help: "The scenario file (see scenarios/).")
    var scenario: String

    @Flag(help: "One JSON object per scenario point.")
    var json = false

    @Option(help: "Write the simulated step of one pipeline as a Chrome/Perfetto trace.")
    var trace: String?

    @Option(help: "For sweeps: write tokens/s per point as an SVG bar chart.")
    var plot: String?

    @Flag(help: "Simulate every pipeline (dp × tp of them) instead of one representative, and report the slowest.")
    var everyPipeline = false

    /// One sweep point, formatted where it was simulated (so MPI ranks can send it to rank 0).
    struct Row: Codable {
        var cells: [String]
        var note: String
        var json: String
        var label: String
        var tokensPerSecond: Double
    }

    func validate() throws {
        try OutputPath.check(trace, flag: "--trace")
        try OutputPath.check(plot, flag: "--plot")
    }

    func run() throws {
        try Console.reportingErrors {
            let sweep = try ScenarioReader(path: scenario).read()
            // Under mpirun, rank r of K simulates points r, r + K, …; rank 0 gathers them in order.
            let world = MPITransport.isUnderMPIRun ? try WorldSetup.open(.mpi, sharedMemory: Settings.current.sharedMemory) : nil
            defer { world?.shutdown() }
            let (rank, size) = (world?.rank ?? 0, world?.worldSize ?? 1)
            var rows: [Int: Row] = [:]
            var firstReport: StepReport?, reliability: [(label: String, value: Double)]?, singleProblem: String?
            for (index, point) in sweep.points.enumerated() where index % size == rank {
                switch point.scenario {
                case .failure(let error):
                    rows[index] = row(sweep.base, point.values, nil, nil, "\(error)")
                    singleProblem = "\(error)"
                case .success(let s):
                    let start = ContinuousClock.now
                    let simulator = StepSimulator(scenario: s)
                    let report = everyPipeline ? simulator.runEveryPipeline() : simulator.run()
                    let elapsed = ContinuousClock.now - start
                    let problem = report.memory.problem(capacity: s.device.memoryBytes, device: s.device.name)
                    rows[index] = row(sweep.base, point.values, s, report, problem)
                    singleProblem = problem
                    if firstReport == nil { firstReport = report }
                    if sweep.points.count == 1 && !json { print(s, report, wall: elapsed) }
                    if sweep.points.count == 1, let settings = s.reliability { reliability = try runReliability(s, settings, step: report) }
                }
            }
            if let world, size > 1 {
                guard let gathered = try gather(rows, world: world) else { return }
                rows = gathered
            }
            let ordered = (0..<sweep.points.count).compactMap { rows[$0] }
            if json {
                for row in ordered { Console.out(row.json) }
            } else if sweep.points.count > 1 {
                printTable(sweep.base, ordered, keys: sweep.points.first?.values.map(\.key) ?? [])
            }
            if let trace, let report = firstReport {
                try report.chromeTrace().write(toFile: trace, atomically: true, encoding: .utf8)
                if !json { Console.out("trace of the simulated pipeline written to \(trace) (open it in ui.perfetto.dev)") }
            }
            if let plot, let reliability {
                try SVGChart.bars(title: "\(sweep.base.name): goodput per checkpoint interval", unit: "goodput", reliability)
                    .write(toFile: plot, atomically: true, encoding: .utf8)
                if !json { Console.out("plot written to \(plot)") }
            } else if let plot {
                let bars = ordered.map { (label: $0.label, value: $0.tokensPerSecond) }
                try SVGChart.bars(title: "\(sweep.base.name): simulated tokens/s", unit: "tokens/s", bars).write(toFile: plot, atomically: true, encoding: .utf8)
                if !json { Console.out("plot written to \(plot)") }
            }
            if sweep.points.count == 1, let problem = singleProblem {
                Console.err("fleet: error: \(problem)")
                throw ExitCode(ExitStatus.input)
            }
        }
    }

    /// Sends this rank's rows to rank 0, which returns all of them (other ranks get nil).
    private func gather(_ rows: [Int: Row], world transport: Transport) throws -> [Int: Row]? {
        guard let all = try Communicator(world: transport).gather(bytes: Array(try JSONEncoder().encode(rows))) else { return nil }
        return try all.reduce(into: [Int: Row]()) { merged, bytes in
            merged.merge(try JSONDecoder().decode([Int: Row].self, from: Data(bytes))) { mine, _ in mine }
        }
    }

    /// A sweep point's table cells, JSON line and plot value.
    private func row(_ base: Scenario, _ values: [(key: String, value: String)], _ s: Scenario?, _ r: StepReport?, _ problem: String?) -> Row {
        var cells = values.map(\.value)
        if base.dataParallelAuto { cells.append(s.map { String($0.layout.dp) } ?? "—") }
        if let r {
            cells += [r.stepTime.description, String(format: "%.0f", r.tokensPerSecond), String(format: "%.1f%%", r.mfu * 100),
                      String(format: "%.1f%%", r.bubbleFraction * 100), String(format: "%.1f", r.memory.total / 1_073_741_824)]
        } else {
            cells += ["—", "—", "—", "—", "—"]
        }
        return Row(cells: cells, note: problem.map { "does not run: " + $0 } ?? "", json: JSONLine.encode(SimulationRecord.step(values, s, r, problem: problem)),
                   label: values.map { "\($0.key)\($0.value)" }.joined(separator: " "),
                   tokensPerSecond: problem == nil ? r?.tokensPerSecond ?? 0 : 0)
    }

    private func print(_ s: Scenario, _ r: StepReport, wall: Duration) {
        let l = s.layout
        Console.out("scenario \(s.name): \(s.summary)")
        Console.out("layout \(l), \(l.microbatches) micro-batch(es), \(l.schedule.rawValue), ZeRO \(s.zero), recompute \(s.recompute.rawValue); "
            + "batch \(s.batch) × \(s.sequence) tokens, " + (s.device.calibration.map {
                "kernels at their measured rates (\($0.gemm.count) sgemm shapes, \($0.cores) cores\($0.pinned ? ", ranks pinned" : ""))"
            } ?? "\(s.precision.rawValue) at \(Int(s.efficiency * 100)) % of peak"))
        let energy = Double(s.gpus) * s.device.watts * r.stepTime.seconds
        Console.out(String(format: "step time %@   %.0f tokens/s   MFU %.1f %%   energy at TDP %.2f MJ/step (%.2f J/token)", r.stepTime.description,
                           r.tokensPerSecond, r.mfu * 100, energy / 1e6, energy / Double(s.batch * s.sequence)))
        let b = r.breakdown, step = r.stepTime.seconds
        func line(_ name: String, _ t: SimTime, _ note: String = "") {
            Console.out("  " + name.padding(toLength: 18, withPad: " ", startingAt: 0) + t.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                + String(format: "%5.1f %%", t.seconds / step * 100) + note)
        }
        Console.out("breakdown of the slowest stage:")
        line("compute", b.compute)
        line("tensor-parallel", b.tensorParallel)
        line("pipeline wait", b.pipelineWait, String(format: "   (bubble: %.1f %% of all stages' time)", r.bubbleFraction * 100))
        line("dp exposed", b.dataParallelExposed)
        line("optimizer", b.optimizer)
        line("checkpoint", b.checkpoint, b.checkpointContention > .zero
             ? "   (stall per step; each async write of \(b.checkpointWrite) slows data-parallel traffic by \(b.checkpointContention) in all)" : "   (stall per step)")
        let m = r.memory, gib = Self.bytes
        Console.out("memory per GPU (stage \(m.stage)): \(gib(m.total)) of \(gib(s.device.memoryBytes)) — weights \(gib(m.weights)), gradients \(gib(m.gradients)), "
            + "optimizer \(gib(m.optimizer)), activations \(gib(m.activations))")
        if !r.busiestLinks.isEmpty {
            Console.out("busiest links: " + r.busiestLinks.map { "\($0.link) \(Self.bytes($0.bytes)) (" + String(format: "%.0f %%)", $0.utilization * 100) }.joined(separator: ", "))
        }
        Console.out("fidelity: \(r.fidelity); \(r.reductions); \(r.events.formatted()) events in \(String(format: "%.1f ms", wall.seconds * 1000))")
    }

    /// Simulates the scenario's failures over days; prints (or emits as JSON) goodput and its
    /// losses, and the interval sweep. Returns the sweep's points for a plot.
    private func runReliability(_ s: Scenario, _ settings: ReliabilitySettings, step: StepReport) throws -> [(label: String, value: Double)]? {
        let model = s.reliabilityModel(settings, step: step)
        let start = ContinuousClock.now
        let r = model.simulate()
        let sweep = settings.intervals.isEmpty ? nil : model.sweep(intervals: settings.intervals)
        let elapsed = (ContinuousClock.now - start).seconds
        let steps = r.useful / step.stepTime.seconds
        if json {
            Console.json(SimulationRecord.reliability(s, model, r, sweep: sweep, steps: steps))
        } else {
            let hours = Self.duration
            let share = { (x: Double) in String(format: "%.1f %%", x / model.duration * 100) }
            Console.out("reliability over \(hours(model.duration)) (seed \(settings.seed)): cluster MTBF \(hours(model.clusterMTBF)) = 1/Σ(nᵢ/MTTFᵢ) over "
                + model.components.map { "\($0.count.formatted()) \($0.name)" }.joined(separator: ", "))
            Console.out("  checkpoint every \(hours(model.checkpointInterval)) (\(model.checkpointing.rawValue); Young–Daly √(2·δ·MTBF) = \(hours(model.youngDalyInterval))), "
                + "write \(hours(model.checkpointWrite)), stall \(hours(model.checkpointStall)), reload \(hours(model.reload)) of \(Self.bytes(s.checkpointBytes))"
                + (step.breakdown.checkpointContention > .zero ? " (the stall includes \(step.breakdown.checkpointContention) of training traffic slowed by the write)" : ""))
            Console.out(String(format: "  goodput %.3f (useful training time / wall time), %.0f steps of %@", r.goodput, steps, step.stepTime.description))
            Console.out("  \(r.failures) failures: " + r.failuresByComponent.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            Console.out("  time lost: rework \(hours(r.rework)) (\(share(r.rework))), restarts \(hours(r.restart)) (\(share(r.restart)); "
                + "of which waiting for repairs \(hours(r.repairWait))), checkpoint stalls \(hours(r.checkpointStalls)) (\(share(r.checkpointStalls))), "
                + "stragglers \(hours(r.stragglers)) (\(share(r.stragglers)))")
            if let sweep {
                Console.out("  checkpoint interval sweep (the same failures for every interval):")
                for report in sweep.reports {
                    Console.out(String(format: "    %10@  goodput %.4f  rework %@  stalls %@%@", hours(report.interval), report.goodput, hours(report.rework),
                                       hours(report.checkpointStalls), report.interval == sweep.best.interval ? "  ← best" : ""))
                }
                Console.out("  best interval \(hours(sweep.best.interval)), Young–Daly \(hours(model.youngDalyInterval))")
            }
            Console.out(String(format: "  simulated in %.2f s", elapsed))
        }
        return sweep.map { $0.reports.map { (label: Self.duration($0.interval), value: $0.goodput) } }
    }

    /// Seconds as hours, minutes or seconds, whichever reads best.
    static func duration(_ x: Double) -> String {
        x >= 7200 ? String(format: "%.1f h", x / 3600) : x >= 120 ? String(format: "%.1f min", x / 60) : String(format: "%.1f s", x)
    }

    /// Bytes in binary units sized to the value.
    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = value, i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }

    private func printTable(_ base: Scenario, _ rows: [Row], keys: [String]) {
        Console.out("scenario \(base.name): \(base.summary); sweep of \(rows.count) points")
        let columns = keys + (base.dataParallelAuto ? ["dp"] : [])
        let table = Table(columns: columns.map { ($0, max(6, $0.count)) } + [("step", 12), ("tokens/s", 12), ("MFU", 7), ("bubble", 7), ("GiB/GPU", 8)])
        Console.out(table.header() + "  note")
        for row in rows { Console.out(table.row(row.cells) + "  " + row.note) }
    }
}
