import Collectives
import Engine
import Foundation
import Parallelism
import Workload

/// `fleet compare`: each layout's step simulated on a calibrated scenario, written down, then
/// trained for real (self-launched ZeroMQ workers or mpirun) and measured from its step logs.
public struct Comparison {
    public var model: ModelSpec
    public var batch: Int
    public var steps: Int
    /// Steps left out of the measurement at the start of each run.
    public var warmup: Int
    /// The calibrated scenario.
    public var base: Scenario
    /// `mpi` (through mpirun) or `zmq` (self-launched workers).
    public var transport: String
    /// Simulations per layout behind its prediction interval, each on the calibration with
    /// every input replaced by one of its recorded repeats (a Monte Carlo over calibrate's spread).
    public var draws = 100
    /// More runs of a layout whose machine was not steady (the probe before it, or its own
    /// steps' pace, beyond `ComparisonRow.driftTolerance`); the steadiest attempt is kept.
    public var retries = 2
    /// The hosts a calibration across hosts measured (`fleet calibrate --hosts`), one per node of
    /// `base`: each layout's ranks are spread over them as the simulation spreads them.
    public var hosts: [String] = []
    /// The data-parallel buckets' all-reduce, run (`fleet train --dp-algo`) and simulated alike: ring or hierarchical.
    public var dataParallelAlgorithm = CollectiveModel.Algorithm.ring

    public init(model: ModelSpec, batch: Int, steps: Int, warmup: Int, base: Scenario, transport: String) {
        self.model = model
        self.batch = batch
        self.steps = steps
        self.warmup = warmup
        self.base = base
        self.transport = transport
    }

    /// The scenario with this layout on as many ranks, on the calibrated machine(s).
    public func simulate(_ layout: ParallelLayout) throws -> ComparisonRow {
        let s = try scenario(layout)
        var row = ComparisonRow(name: LayoutName.name(layout), layout: layout, simulated: StepSimulator(scenario: s).run())
        row.placement = placement(layout)
        row.interval = interval(s, seed: row.name)
        return row
    }

    /// The row's prediction and interval again, on the calibration rescaled to the speed the
    /// probe measured right before its run (`row.drift`): drift control by rescaling, beside the
    /// prediction recorded before any run.
    public func adjustForDrift(_ row: inout ComparisonRow) throws {
        guard let drift = row.drift else { return }
        var s = try scenario(row.layout)
        s.device.calibration = s.device.calibration?.scaled(speed: 1 + drift)
        // Pinned ranks: each at its core's speed now (the cores of this VM move apart and back).
        if let speeds = row.coreSpeeds, speeds.count > 1, let c = s.device.calibration, c.pinned {
            s.asymmetry.cores = Asymmetry.PinnedCores(speeds: speeds.map { $0 / (1 + drift) }, sharedByNodes: c.coresSharedByNodes)
        }
        row.driftAdjusted = (StepSimulator(scenario: s).stepTime().seconds, interval(s, seed: row.name))
    }

    /// The calibrated scenario set up for `layout`.
    func scenario(_ layout: ParallelLayout) throws -> Scenario {
        var s = base
        s.model = model
        s.batch = batch
        s.sequence = model.context
        s.layout = layout
        s.zero = layout.zeroStage
        s.dataParallelAuto = false
        s.dataParallelAlgorithm = dataParallelAlgorithm
        let nodes = self.nodes(layout)
        s.nodes = nodes
        s.gpusPerNode = layout.worldSize / nodes
        if let problem = s.problems().first { throw FleetError("cannot simulate \(LayoutName.name(layout)): \(problem)") }
        return s
    }

    /// The 10th and 90th percentiles of the step time over `draws` simulations of `scenario`,
    /// each drawing every calibrated input from its repeats (seeded by `seed`, so a run is
    /// reproducible); nil when the calibration kept no repeats.
    public func interval(_ scenario: Scenario, seed: String) -> (p10: Double, p90: Double)? {
        guard let calibration = scenario.device.calibration, calibration.hasRepeats, draws > 1 else { return nil }
        var state = seed.utf8.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        func pick(_ count: Int) -> Int {   // SplitMix64
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return Int((z ^ (z >> 31)) % UInt64(count))
        }
        let times = (0..<draws).map { _ -> Double in
            var s = scenario
            s.device.calibration = calibration.drawn(pick)
            return StepSimulator(scenario: s).stepTime().seconds
        }
        return (Measurement.quantile(times, 0.1), Measurement.quantile(times, 0.9))
    }

    /// Writes every prediction to `directory/predictions.jsonl`, stamped, before any run starts.
    public func recordPredictions(_ rows: [ComparisonRow], in directory: String) throws {
        let stamp = ISO8601DateFormatter().string(from: Date())
        let lines = rows.map { row in
            JSONLine.encode([("layout", row.name), ("simulated_step_s", row.simulated.stepTime.seconds), ("simulated_compute_s", row.simulatedCompute),
                             ("simulated_communication_s", row.simulatedCommunication), ("simulated_bubble_s", row.simulatedBubble),
                             ("simulated_p10_s", row.interval?.p10 ?? .nan), ("simulated_p90_s", row.interval?.p90 ?? .nan),
                             ("predicted_at", stamp)])
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: "\(directory)/predictions.jsonl", atomically: true, encoding: .utf8)
    }

    /// The nodes a layout's ranks spread over: every node of a calibration across hosts when
    /// they divide evenly, else the first alone.
    func nodes(_ layout: ParallelLayout) -> Int {
        base.nodes > 1 && layout.worldSize % base.nodes == 0 ? base.nodes : 1
    }

    /// Where the real run's ranks go (`A:2,B:2`, the simulation's spread); nil on this machine.
    public func placement(_ layout: ParallelLayout) -> String? {
        guard !hosts.isEmpty else { return nil }
        let nodes = self.nodes(layout)
        return hosts.prefix(nodes).map { "\($0):\(layout.worldSize / nodes)" }.joined(separator: ",")
    }

    /// Probes the machine (each core when ranks are pinned to several), trains the layout, and
    /// rescales the prediction to the probed speed; a run whose machine was not steady is run
    /// again, up to `retries` more times, and the steadiest attempt kept (steadiness alone
    /// decides, never the prediction). Attempt k > 1 logs to `directory.k`.
    public func run(_ row: inout ComparisonRow, directory: String, probe: DriftProbe?) throws {
        var best: ComparisonRow?, attempts = 0
        while attempts <= retries {
            attempts += 1
            var tried = row
            if let probe {
                // Pinned ranks on more than one core: each core probed, each rank rescaled to its own.
                let cores = base.device.calibration.map { $0.pinned ? min($0.cores, WorldSetup.usableCores) : 1 } ?? 1
                // Probed under the layout's load (one rank alone, several with every core busy): real
                // training steps when the calibration timed them, else its heaviest products.
                let together = row.layout.worldSize > 1
                let speeds = probe.stepSpeeds(cores: cores, together: together)
                    ?? (cores == 1 ? [probe.speed()] : together ? probe.speedsTogether(cores: cores) : probe.speeds(cores: cores))
                tried.coreSpeeds = speeds.count > 1 ? speeds : nil
                tried.drift = speeds.reduce(0, +) / Double(speeds.count) - 1
            }
            tried.measured = try measure(tried, directory: attempts == 1 ? directory : "\(directory).\(attempts)")
            tried.kept = attempts
            if best == nil || tried.unsteadiness < best!.unsteadiness { best = tried }
            if !tried.unsteady { break }
        }
        row = best!
        row.attempts = attempts
        try adjustForDrift(&row)
    }

    /// Trains the layout for real and reads its step logs.
    public func measure(_ row: ComparisonRow, directory: String) throws -> StepLogs {
        let l = row.layout
        var arguments = ["train", model.name, "--steps", "\(steps)", "--batch", "\(batch)", "--run-dir", directory, "--json"] + LayoutName.trainArguments(l)
        if dataParallelAlgorithm == .hierarchical && l.dp > 1 { arguments += ["--dp-algo", "hierarchical"] }
        let run: (status: Int32, stdout: String, stderr: String)
        let placement = self.placement(l)
        if transport == "mpi" && l.worldSize > 1 {
            arguments += ["--transport", "mpi"]
            guard let mpirun = ChildProcess.mpirun(ranks: l.worldSize, pinned: true, hosts: placement, arguments) else {
                throw FleetError("--transport mpi needs mpirun on PATH (install openmpi-bin), or use --transport zmq")
            }
            run = try ChildProcess.run(mpirun.path, mpirun.arguments, environment: mpirun.environment)
        } else {
            run = try ChildProcess.fleet(arguments + (placement.map { ["--hosts", $0] } ?? []), environment: ["FLEET_PIN_CORES": "1"])
        }
        guard run.status == 0 else {
            throw FleetError("the \(row.name) run failed (exit \(run.status)); its logs are in \(directory): \(run.stderr.suffix(800))", duringRun: true)
        }
        return try StepLogs(directory: directory, ranks: l.worldSize, warmup: warmup)
    }
}

/// One layout's prediction and, once run, its measurement.
public struct ComparisonRow {
    public var name: String
    public var layout: ParallelLayout
    public var simulated: StepReport
    public var measured: StepLogs?
    /// Where its real ranks ran (`A:1,B:1`, from `Comparison.placement`); nil on this machine.
    public var placement: String?
    /// The machine's speed right before this layout ran, over its calibrated speed, less 1
    /// (`DriftProbe`; −0.1: 10 % slower than when calibrated); nil without a calibration.
    public var drift: Double?
    /// Each core's speed right before this layout ran over the calibrated speed (`DriftProbe.speeds`;
    /// 0.9: that core 10 % slower); nil unless ranks are pinned on more than one core. `drift` is their mean less 1.
    public var coreSpeeds: [Double]?
    /// Runs of this layout (more than one: the machine was not steady, see `Comparison.retries`), and which was kept.
    public var attempts = 0, kept = 0
    /// The run's own pace spread (`StepLogs.paceSpread`) or the probe's drift, whichever is larger.
    public var unsteadiness: Double { max(abs(drift ?? 0), measured?.paceSpread ?? 0) }
    /// Measured on a machine that was not steady: beyond the tolerance before the run or during it.
    public var unsteady: Bool { unsteadiness > Self.driftTolerance }
    /// The simulated step's 10–90 % interval over the calibration's repeats (`Comparison.interval`).
    public var interval: (p10: Double, p90: Double)?
    /// Whether the measured median falls inside `interval`.
    public var inside: Bool? { interval.map { $0.p10 <= measuredStep && measuredStep <= $0.p90 } }
    /// The step and its interval simulated on the calibration rescaled to `drift`
    /// (`Comparison.adjustForDrift`); nil before the run or without a probe.
    public var driftAdjusted: (step: Double, interval: (p10: Double, p90: Double)?)?
    /// Whether the measured median falls inside the drift-rescaled interval.
    public var insideDriftAdjusted: Bool? {
        driftAdjusted?.interval.map { $0.p10 <= measuredStep && measuredStep <= $0.p90 }
    }
    /// Drift beyond this is flagged: the layout was measured on a machine the calibration no
    /// longer describes (the probe itself moves by a few percent).
    public static let driftTolerance = 0.08

    public var simulatedCompute: Double { simulated.breakdown.compute.seconds + simulated.breakdown.optimizer.seconds }
    public var simulatedCommunication: Double {
        let b = simulated.breakdown
        return (b.tensorParallel + b.expertAllToAll + b.contextParallel + b.dataParallelExposed).seconds
    }
    public var simulatedBubble: Double { simulated.breakdown.pipelineWait.seconds }
    public var measuredStep: Double { measured.map { StepLogs.median($0.steps) } ?? .nan }
    /// Simulated minus measured, in percent of measured.
    public var error: Double { (simulated.stepTime.seconds - measuredStep) / measuredStep * 100 }
    /// The prediction with its kernels rescaled to the machine's speed at the time of the run
    /// (the whole step simulated again: waits and overlaps follow the compute); the prediction
    /// itself before the run.
    public var driftAdjustedSimulated: Double { driftAdjusted?.step ?? simulated.stepTime.seconds }
    public var driftAdjustedError: Double { (driftAdjustedSimulated - measuredStep) / measuredStep * 100 }
    public var drifted: Bool { abs(drift ?? 0) > Self.driftTolerance }

    /// The part of the step whose simulated and measured times differ most.
    public var worstComponent: String {
        guard let m = measured else { return "-" }
        let parts = [("compute", simulatedCompute - m.compute), ("communication", simulatedCommunication - m.communication),
                     ("bubble", simulatedBubble - m.bubble)]
        let worst = parts.max { abs($0.1) < abs($1.1) }!
        return String(format: "%@ %+.1f ms", worst.0, worst.1 * 1000)
    }

    /// How many times faster than `baseline` (the one-process step of the same run) this layout
    /// steps, measured and simulated: every layout trains the same global batch, so it is the
    /// ratio of step times — what scaling teaches, independent of the model's absolute error.
    public func speedup(over baseline: ComparisonRow) -> (measured: Double, simulated: Double) {
        (baseline.measuredStep / measuredStep, baseline.simulated.stepTime.seconds / simulated.stepTime.seconds)
    }

    /// The one-process row among `rows` (dp1), the baseline of every speed-up.
    public static func baseline(_ rows: [ComparisonRow]) -> ComparisonRow? { rows.first { $0.layout.worldSize == 1 } }

    /// What `fleet compare --json` prints for a measured row (speed-ups over `baseline`, when the run had one).
    public func record(baseline: ComparisonRow?) -> [(String, Any)] {
        let speedup = baseline.map { self.speedup(over: $0) } ?? (measured: Double.nan, simulated: Double.nan)
        return record + [("measured_speedup", speedup.measured), ("simulated_speedup", speedup.simulated)]
    }

    /// What `fleet compare --json` prints for a measured row.
    public var record: [(String, Any)] {
        let m = measured ?? StepLogs()
        return [("layout", name), ("ranks", layout.worldSize), ("hosts", placement ?? "local"), ("measured_step_s", measuredStep),
                ("measured_p25_s", StepLogs.quantile(m.steps, 0.25)), ("measured_p75_s", StepLogs.quantile(m.steps, 0.75)),
                ("simulated_step_s", simulated.stepTime.seconds), ("simulated_p10_s", interval?.p10 ?? .nan),
                ("simulated_p90_s", interval?.p90 ?? .nan), ("measured_inside_interval", inside.map { $0 as Any } ?? NSNull()), ("error_pct", error),
                ("measured_compute_s", m.compute), ("simulated_compute_s", simulatedCompute),
                ("measured_communication_s", m.communication), ("simulated_communication_s", simulatedCommunication),
                ("measured_bubble_s", m.bubble), ("simulated_bubble_s", simulatedBubble),
                ("largest_difference", worstComponent), ("drift_pct", (drift ?? .nan) * 100), ("core_speeds_now", coreSpeeds ?? []),
                ("measured_pace_spread_pct", (measured?.paceSpread ?? .nan) * 100), ("attempts", attempts), ("kept_attempt", kept),
                ("drift_adjusted_simulated_s", driftAdjustedSimulated), ("drift_adjusted_error_pct", driftAdjustedError),
                ("drift_adjusted_p10_s", driftAdjusted?.interval?.p10 ?? .nan), ("drift_adjusted_p90_s", driftAdjusted?.interval?.p90 ?? .nan),
                ("measured_inside_drift_adjusted_interval", insideDriftAdjusted.map { $0 as Any } ?? NSNull())]
    }

    /// Measured against simulated, one row per layout, and the errors' median and largest.
    /// The prediction as `fleet compare` prints it before any run.
    public var prediction: String {
        String(format: "  %-10@ simulated %7.2f ms  (compute %.2f, communication %.2f, bubble %.2f)", name,
               simulated.stepTime.seconds * 1000, simulatedCompute * 1000, simulatedCommunication * 1000, simulatedBubble * 1000)
    }

    public static func table(_ rows: [ComparisonRow]) -> [String] {
        let baseline = Self.baseline(rows)
        let table = Table(columns: [("layout", max(8, rows.map(\.name.count).max() ?? 0)), ("ranks", 5), ("measured ms", 11), ("p25–p75", 13), ("simulated", 9), ("sim p10–p90", 13), ("error", 7),
                                    ("speed-up m/s", 12), ("compute m/s", 13), ("comm m/s", 11), ("bubble m/s", 11), ("drift", 7), ("largest difference", 24)])
        var lines = [table.header()]
        for row in rows {
            let m = row.measured ?? StepLogs()
            lines.append(table.row([row.name, "\(row.layout.worldSize)", String(format: "%.2f", row.measuredStep * 1000),
                                    String(format: "%.1f–%.1f", StepLogs.quantile(m.steps, 0.25) * 1000, StepLogs.quantile(m.steps, 0.75) * 1000),
                                    String(format: "%.2f", row.simulated.stepTime.seconds * 1000),
                                    row.interval.map { String(format: "%.1f–%.1f%@", $0.p10 * 1000, $0.p90 * 1000, row.inside == true ? "" : "*") } ?? "-",
                                    String(format: "%+.1f%%", row.error),
                                    baseline.map { let s = row.speedup(over: $0); return String(format: "%.2f/%.2f", s.measured, s.simulated) } ?? "-",
                                    String(format: "%.1f/%.1f", m.compute * 1000, row.simulatedCompute * 1000),
                                    String(format: "%.1f/%.1f", m.communication * 1000, row.simulatedCommunication * 1000),
                                    String(format: "%.1f/%.1f", m.bubble * 1000, row.simulatedBubble * 1000),
                                    row.drift.map { String(format: "%+.0f%%%@", $0 * 100, row.drifted ? "!" : "") } ?? "-",
                                    abs(row.error) > 10 ? row.worstComponent : "-"]))
        }
        let errors = rows.map { abs($0.error) }
        lines.append(String(format: "|error|: median %.1f%%, largest %.1f%% (%@)", StepLogs.median(errors), errors.max() ?? 0,
                            rows.max { abs($0.error) < abs($1.error) }?.name ?? "-"))
        let judged = rows.compactMap(\.inside)
        if !judged.isEmpty {
            lines.append("measured median inside the simulated 10–90 % interval (over calibrate's repeats): \(judged.filter { $0 }.count) of \(judged.count) layouts (* outside)")
        }
        // Drift: the machine's speed before each run against the calibration's.
        let drifts = rows.compactMap(\.drift)
        if !drifts.isEmpty {
            let adjusted = rows.map { abs($0.driftAdjustedError) }
            let judged = rows.compactMap(\.insideDriftAdjusted)
            lines.append(String(format: "machine speed before each run vs the calibration: %+.0f%% to %+.0f%%; with the kernels rescaled to it, |error| median %.1f%%, largest %.1f%%%@",
                                (drifts.min() ?? 0) * 100, (drifts.max() ?? 0) * 100, StepLogs.median(adjusted), adjusted.max() ?? 0,
                                judged.isEmpty ? "" : ", \(judged.filter { $0 }.count) of \(judged.count) inside the rescaled interval"))
            let cores = rows.compactMap(\.coreSpeeds).filter { $0.count > 1 }
            if let count = cores.first?.count, cores.allSatisfy({ $0.count == count }) {
                let each = (0..<count).map { core in String(format: "core %d %+.0f%% to %+.0f%%", core, (cores.map { $0[core] }.min()! - 1) * 100, (cores.map { $0[core] }.max()! - 1) * 100) }
                lines.append("  each core before each run (the rescaling prices each pinned rank at its own core): " + each.joined(separator: ", "))
            }
            let rerun = rows.filter { $0.attempts > 1 }.map { "\($0.name) (\($0.attempts) runs, kept run \($0.kept))" }
            if !rerun.isEmpty { lines.append("run again, the machine unsteady: " + rerun.joined(separator: ", ")) }
            let flagged = rows.filter(\.unsteady).map { String(format: "%@ (probe %+.0f%%, pace spread %.0f%%)", $0.name, ($0.drift ?? 0) * 100, ($0.measured?.paceSpread ?? 0) * 100) }
            if !flagged.isEmpty {
                lines.append(String(format: "! measured on an unsteady machine (more than %.0f%% off the calibrated speed before the run, or changing pace during it): %@ — the error there tells of the hour, not the model; run again, or calibrate again",
                                    Self.driftTolerance * 100, flagged.joined(separator: ", ")))
            }
        }
        if let baseline {
            // Scaling: each layout's speed-up over the one-process step, measured against simulated.
            let off = rows.filter { $0.layout.worldSize > 1 }.map { row -> Double in let s = row.speedup(over: baseline); return abs(s.simulated - s.measured) / s.measured * 100 }
            if !off.isEmpty { lines.append(String(format: "speed-up over dp1: simulated within %.1f%% of measured (median), %.1f%% at most", StepLogs.median(off), off.max()!)) }
        } else {
            lines.append("(add dp1 to --layouts to see each layout's speed-up over one process, measured against simulated)")
        }
        return lines
    }
}
