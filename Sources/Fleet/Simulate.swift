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

    @Flag(help: "Print one JSON document: {\"scenario\", \"step\" (or \"sweep\" and \"points\"), \"reliability\"}; each step with its stages, memory, fabric, energy and (with a budget) train sections.")
    var json = false

    @Option(help: "Write the simulated step of one pipeline as a Chrome/Perfetto trace.")
    var trace: String?

    @Option(help: "For sweeps: write tokens/s per point as an SVG bar chart.")
    var plot: String?

    @Flag(help: "Full fidelity: simulate every pipeline (dp × tp of them) on its own GPUs and routes, not one standing for all (or, on an uneven fleet, those that differ); report the slowest.")
    var everyPipeline = false

    @Flag(help: "Instead of a step: time every all-reduce algorithm on the scenario's fabric over message and group sizes, with the ring/tree crossover.")
    var collectives = false

    func validate() throws {
        try OutputPath.check(trace, flag: "--trace")
        try OutputPath.check(plot, flag: "--plot")
    }

    func run() throws {
        try Console.reportingErrors {
            let reader = try ScenarioReader(path: scenario)
            if let serving = try reader.readServing() {
                let report = ServingSimulator.run(serving), sweep = ServingSimulator.sweep(serving)
                if json { Console.json(ServingText.document(serving, report, sweep: sweep)) } else { ServingText.lines(serving, report, sweep: sweep).forEach(Console.out) }
                return
            }
            let sweep = try reader.read()
            if collectives {
                let table = CollectiveTable(sweep.base)
                if json { Console.json(table.document(sweep.base)) } else { table.lines().forEach(Console.out) }
                return
            }
            var simulation = ScenarioRun(sweep: sweep)
            simulation.everyPipeline = everyPipeline
            let world = MPITransport.isUnderMPIRun ? try WorldSetup.open(.mpi, sharedMemory: Settings.current.sharedMemory) : nil
            defer { world?.shutdown() }
            guard let outcome = try simulation.run(world: world) else { return }
            let base = simulation.sweep.base
            var reliability: ScenarioRun.Reliability?
            if outcome.isSinglePoint, let point = outcome.first {
                if !json { SimulationText.step(point.scenario, point.report, wall: point.wall).forEach(Console.out) }
                reliability = try ScenarioRun.reliability(point)
                if let r = reliability, let settings = point.scenario.reliability {
                    if !json {
                        SimulationText.reliability(point.scenario, seed: settings.seed, r.model, r.report, sweep: r.sweep,
                                                   step: point.report, elapsed: r.elapsed).forEach(Console.out)
                    }
                }
                if !json {
                    RunEstimateText.lines(point.scenario, RunEstimate(point.scenario, point.report, goodput: reliability?.report.goodput)).forEach(Console.out)
                }
            }
            if json {
                // One JSON document per call: the step (or every sweep point) and the reliability run.
                var document: [(String, Any)] = [("scenario", base.name), ("model", base.model.name), ("gpus", base.gpus)]
                if outcome.isSinglePoint, let row = outcome.rows.first {
                    document.append(("step", JSONRaw(row.json)))
                } else {
                    document += [("sweep", simulation.sweep.points.first?.values.map(\.key) ?? []), ("points", outcome.rows.map { JSONRaw($0.json) })]
                }
                if let r = reliability, let point = outcome.first {
                    document.append(("reliability", JSONObject(SimulationRecord.reliability(point.scenario, r.model, r.report, sweep: r.sweep, steps: r.steps))))
                }
                Console.json(document)
            } else if !outcome.isSinglePoint {
                printTable(base, outcome.rows, keys: simulation.sweep.points.first?.values.map(\.key) ?? [])
            }
            if let trace, let report = outcome.first?.report {
                try report.chromeTrace().write(toFile: trace, atomically: true, encoding: .utf8)
                if !json { Console.out("trace of the simulated pipeline written to \(trace) (open it in ui.perfetto.dev)") }
            }
            if let plot {
                let chart = reliability?.bars.map { SVGChart.bars(title: "\(base.name): goodput per checkpoint interval", unit: "goodput", $0) }
                    ?? SVGChart.bars(title: "\(base.name): simulated tokens/s", unit: "tokens/s", outcome.rows.map { (label: $0.label, value: $0.tokensPerSecond) })
                try chart.write(toFile: plot, atomically: true, encoding: .utf8)
                if !json { Console.out("plot written to \(plot)") }
            }
            if let problem = outcome.problem {
                Console.err("fleet: error: \(problem)")
                throw ExitCode(ExitStatus.input)
            }
        }
    }

    private func printTable(_ base: Scenario, _ rows: [SweepRow], keys: [String]) {
        Console.out("scenario \(base.name): \(base.summary); sweep of \(rows.count) points")
        let columns = keys + (base.dataParallelAuto ? ["dp"] : [])
        // Each swept key's column as wide as its widest value (`interleaved`, `H100`…).
        let widths = columns.indices.map { i in rows.reduce(max(6, columns[i].count)) { max($0, i < $1.cells.count ? $1.cells[i].count : 0) } }
        let table = Table(columns: zip(columns, widths).map { ($0, $1) } + [("step", 12), ("tokens/s", 12), ("MFU", 7), ("bubble", 7), ("GiB/GPU", 8)]
                          + SweepRow.runColumns(base))
        Console.out(table.header() + "  note")
        for row in rows { Console.out(table.row(row.cells) + "  " + row.note) }
        // With a budget, name the point that trains fastest, cheapest and with the least carbon.
        for (what, value) in [("fastest to train", \SweepRow.trainSeconds), ("cheapest", \SweepRow.cost), ("least carbon", \SweepRow.carbonKg)] {
            if let best = rows.filter({ $0[keyPath: value] != nil }).min(by: { $0[keyPath: value]! < $1[keyPath: value]! }) {
                Console.out("\(what): \(best.label)")
            }
        }
    }
}
