import ArgumentParser
import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Workflows
import Workload

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run layouts for real and in the simulator (calibrated on this machine) and compare their step times.",
        discussion: """
        Every layout's simulated step is computed and written down before any real run starts, so no prediction can be fitted to the run it predicts. Ranks are pinned round-robin to cores, as the calibration assumes.

        Examples:
          fleet calibrate && fleet compare gpt-tiny
          fleet compare gpt-tiny --layouts dp1,dp2,dp4,tp2,pp2,dp2pp2,tp2pp2,dp2tp2 --steps 30 --plot scaling.svg
          fleet compare gpt-tiny --transport mpi --json
          fleet compare gpt-tiny --scenario two-hosts.yaml --hosts 198.18.0.1,198.18.0.2 --layouts dp1,dp2,dp4   # across hosts
        """)

    @Argument(help: "Model to train and simulate: \(ModelCatalog.trainable.map(\.name).joined(separator: ", ")).")
    var model: ModelSpec = ModelCatalog.gptTiny

    @Option(help: "Layouts, comma-separated: dp, tp and pp degrees (dp2pp2), then optionally v2 (interleaved), gpipe, m8 (micro-batches), z1 (ZeRO), sp (sequence parallel): pp2v2, dp2z1, tp2sp.")
    var layouts: String = LayoutName.standard.joined(separator: ",")

    @Option(help: "Training steps per real run.")
    var steps: Int = 30

    @Option(help: "Steps left out of the measurement at the start of each run.")
    var warmup: Int = 5

    @Option(help: "Global batch (sequences per step).")
    var batch: Int = 8

    @Option(help: "Calibrated scenario (from fleet calibrate).")
    var scenario: String = "scenarios/local.yaml"

    @Option(help: "Transport of the real runs: mpi (through mpirun; the default when it is installed) or zmq (self-launched workers).")
    var transport: String = ChildProcess.which("mpirun") != nil ? "mpi" : "zmq"

    @Option(help: "The hosts of a calibration across hosts (fleet calibrate --hosts), in the same order: each layout's ranks spread evenly over them, as simulated (A,B or A:2,B:2; slots are ignored).")
    var hosts: String?

    @Option(help: "The data-parallel buckets' all-reduce, run and simulated: ring, or hierarchical (each host's ranks over shared memory, then a ring across hosts).")
    var dpAlgo: String = "ring"

    @Option(help: "Runs again a layout measured on an unsteady machine (its probe, or its own steps' pace, more than 8 % off), up to this many more times, keeping the steadiest run.")
    var retries: Int = 2

    @Option(help: "Directory for the runs' logs and the predictions.")
    var runDir: String?

    @Flag(help: "One JSON object per layout.")
    var json = false

    @Option(help: "Write measured and simulated step times as an SVG chart.")
    var plot: String?

    func validate() throws {
        guard steps > warmup, warmup >= 0 else { throw ValidationError("--steps must exceed --warmup (\(warmup)), which must be ≥ 0") }
        guard (0...10).contains(retries) else { throw ValidationError("--retries must be between 0 and 10 (got \(retries))") }
        guard steps <= 1_000_000 else { throw ValidationError("--steps \(steps) is more than a comparison runs (at most 1,000,000)") }
        guard (1...65_536).contains(batch) else { throw ValidationError("--batch must be between 1 and 65,536 sequences") }
        guard ["zmq", "mpi"].contains(transport) else { throw ValidationError("--transport must be zmq or mpi") }
        try OutputPath.check(plot, flag: "--plot")
        try OutputPath.check(runDir, flag: "--run-dir", as: .directory)
        guard FileManager.default.fileExists(atPath: scenario) else {
            throw ValidationError("no calibration at \(scenario): run `fleet calibrate` first (it writes scenarios/local.yaml), or pass --scenario FILE")
        }
        if MPITransport.isUnderMPIRun {
            throw ValidationError("fleet compare starts its own runs (use --transport mpi to run them through mpirun); do not start it under mpirun")
        }
        guard ["ring", "hierarchical"].contains(dpAlgo) else { throw ValidationError("--dp-algo must be ring or hierarchical (got '\(dpAlgo)')") }
        for name in layouts.split(separator: ",") {
            let layout: ParallelLayout
            do { layout = try LayoutName.parse(String(name)); try layout.validate(model: model, batch: batch) } catch { throw ValidationError("--layouts: \(error)") }
            if dpAlgo == "hierarchical" && layout.zeroStage > 0 {
                throw ValidationError("--dp-algo hierarchical is for the buckets' all-reduce; \(name) reduce-scatters them under ZeRO: leave it out or drop --dp-algo")
            }
        }
    }

    func run() throws {
        try Console.reportingErrors {
            let base = try ScenarioReader(path: scenario).read().base
            let blas = BLASKernelReport.current(environment: ProcessInfo.processInfo.environment)
            if let calibrated = base.device.calibration?.blasKernel, calibrated.lowercased() != blas.kernel.lowercased() {
                Console.err("warning: \(scenario) was calibrated with BLAS kernel \(calibrated), but this run uses \(blas.kernel) (\(blas.headerLine)); "
                            + "its kernel rates may not hold: run fleet calibrate again")
            }
            if let calibrated = base.device.calibration?.transport, calibrated != transport {
                Console.err("warning: \(scenario) was calibrated over \(calibrated) (its links and waits are \(calibrated)'s), but these runs use \(transport): "
                            + "the communication is priced for the other transport; calibrate with --fabric \(transport) to compare \(transport)")
            }
            let directory = try runDir ?? RunDirectory.create("compare")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var comparison = Comparison(model: model, batch: batch, steps: steps, warmup: warmup, base: base, transport: transport)
            comparison.hosts = try hostList(nodes: base.nodes)
            comparison.retries = retries
            comparison.dataParallelAlgorithm = dpAlgo == "hierarchical" ? .hierarchical : .ring
            var rows = try layouts.split(separator: ",").map { try comparison.simulate(try LayoutName.parse(String($0))) }
            try comparison.recordPredictions(rows, in: directory)
            if !json {
                Console.out("fleet compare \(model.name): batch \(batch) × \(model.context), \(steps) steps (\(warmup) warm-up), \(transport), scenario \(scenario) (\(base.device.calibration?.cores ?? 0) cores)"
                            + (comparison.hosts.isEmpty ? "" : ", ranks spread over \(comparison.hosts.joined(separator: ", "))"))
                Console.out("predictions, written to \(directory)/predictions.jsonl before any run:")
                rows.map(\.prediction).forEach(Console.out)
            }
            // Right before each run, the machine's speed against the calibration's (drift control).
            let probe = base.device.calibration.map { calibration -> DriftProbe in
                // The calibration's own model and batch: its steps are what the probe times again.
                var probe = DriftProbe(calibration: calibration, model: base.model, sequence: base.model.context)
                probe.stepBatch = base.batch
                return probe
            }
            for index in rows.indices {
                if !json { Console.progress("probing this machine's speed, then running \(rows[index].name) (\(rows[index].layout.worldSize) ranks, \(steps) steps)…") }
                try comparison.run(&rows[index], directory: "\(directory)/\(rows[index].name)", probe: probe)
            }
            if json {
                let baseline = ComparisonRow.baseline(rows)
                rows.forEach { Console.json($0.record(baseline: baseline)) }
            } else {
                Console.progress("")
                ComparisonRow.table(rows).forEach(Console.out)
            }
            if let plot { try plotChart(rows).write(toFile: plot, atomically: true, encoding: .utf8) }
        }
    }

    /// The --hosts addresses, one per node of a calibration across hosts (checked against it).
    private func hostList(nodes: Int) throws -> [String] {
        guard let hosts else {
            guard nodes == 1 else {
                throw FleetError("\(scenario) was calibrated across \(nodes) hosts: pass --hosts with them, in the order fleet calibrate --hosts had them (its header names them)")
            }
            return []
        }
        let list: [String]
        do { list = try LaunchHosts(list: hosts).hosts.map(\.address) } catch { throw FleetError("--hosts: \(error)") }
        guard list.count == nodes else {
            throw FleetError(nodes == 1
                ? "\(scenario) describes one machine: calibrate across the hosts first (fleet calibrate --hosts \(hosts) --out FILE), then pass that scenario"
                : "\(scenario) was calibrated across \(nodes) hosts, --hosts names \(list.count): give the calibration's \(nodes)")
        }
        return list
    }

    /// Step times measured and simulated; with dp1 among the layouts, speed-ups over it instead (what scaling is).
    /// The simulated 10–90 % band is drawn as two thin lines either side of the prediction.
    private func plotChart(_ rows: [ComparisonRow]) -> String {
        let banded = rows.allSatisfy { $0.interval != nil }
        if let baseline = ComparisonRow.baseline(rows), rows.count > 1 {
            let reference = baseline.simulated.stepTime.seconds
            let band: [(String, String, [Double])] = banded
                ? [("simulated p10", "#9dbbe0", rows.map { reference / $0.interval!.p10 }), ("simulated p90", "#9dbbe0", rows.map { reference / $0.interval!.p90 })] : []
            return SVGChart.lines(title: "\(model.name): speed-up over one process, measured vs simulated (\(transport), batch \(batch))", unit: "× dp1",
                                  labels: rows.map(\.name),
                                  series: [("measured", "#c0392b", rows.map { $0.speedup(over: baseline).measured }),
                                           ("simulated", "#2c6fbb", rows.map { $0.speedup(over: baseline).simulated })] + band)
        }
        let band: [(String, String, [Double])] = banded
            ? [("simulated p10", "#9dbbe0", rows.map { $0.interval!.p10 * 1000 }), ("simulated p90", "#9dbbe0", rows.map { $0.interval!.p90 * 1000 })] : []
        return SVGChart.lines(title: "\(model.name): measured vs simulated step time (\(transport), batch \(batch))", unit: "ms per step",
                       labels: rows.map(\.name),
                       series: [("measured", "#c0392b", rows.map { $0.measuredStep * 1000 }),
                                ("simulated", "#2c6fbb", rows.map { $0.simulated.stepTime.seconds * 1000 })] + band)
    }
}
