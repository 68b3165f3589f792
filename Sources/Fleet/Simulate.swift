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

    typealias Row = SweepRow

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
                    rows[index] = Row(sweep.base, point.values, nil, nil, problem: "\(error)")
                    singleProblem = "\(error)"
                case .success(let s):
                    let start = ContinuousClock.now
                    let simulator = StepSimulator(scenario: s)
                    let report = everyPipeline ? simulator.runEveryPipeline() : simulator.run()
                    let elapsed = ContinuousClock.now - start
                    let problem = report.memory.problem(capacity: s.device.memoryBytes, device: s.device.name)
                    rows[index] = Row(sweep.base, point.values, s, report, problem: problem)
                    singleProblem = problem
                    if firstReport == nil { firstReport = report }
                    if sweep.points.count == 1 && !json { SimulationText.step(s, report, wall: elapsed).forEach(Console.out) }
                    if sweep.points.count == 1, let settings = s.reliability { reliability = try runReliability(s, settings, step: report) }
                }
            }
            if let world, size > 1 {
                guard let gathered = try Row.gather(rows, over: world) else { return }
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
            SimulationText.reliability(s, seed: settings.seed, model, r, sweep: sweep, step: step, elapsed: elapsed).forEach(Console.out)
        }
        return sweep.map { $0.reports.map { (label: Units.duration($0.interval), value: $0.goodput) } }
    }

    private func printTable(_ base: Scenario, _ rows: [Row], keys: [String]) {
        Console.out("scenario \(base.name): \(base.summary); sweep of \(rows.count) points")
        let columns = keys + (base.dataParallelAuto ? ["dp"] : [])
        let table = Table(columns: columns.map { ($0, max(6, $0.count)) } + [("step", 12), ("tokens/s", 12), ("MFU", 7), ("bubble", 7), ("GiB/GPU", 8)])
        Console.out(table.header() + "  note")
        for row in rows { Console.out(table.row(row.cells) + "  " + row.note) }
    }
}
