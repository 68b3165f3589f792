import Collectives
import FaultInjection
import Foundation
import Parallelism
import Training

/// `fleet chaos`: a fault-free reference run, then runs that each suffer one random fault
/// (drawn from `seed`) under deterministic training with checkpoints, checksums, replica
/// checks and restarts. A run passes when it finishes with the reference's exact parameters
/// and every complete checkpoint it left verifies. Runs are real `fleet train` processes;
/// what happened in each is read from its event channel.
public struct ChaosCampaign {
    public var model: String
    /// The layouts runs take in turn (deterministic mode makes each bitwise one process's run,
    /// so one fault-free reference serves them all).
    public var layouts: [ParallelLayout]
    /// `zmq` (self-launched workers under fleet's own supervisor) and `mpi` (mpirun under
    /// `fleet supervise`), taken in turn with the layouts.
    public var transports: [String]
    public var steps: Int
    public var seed: UInt64
    public var kinds: [Fault.Kind]
    public var directory: String
    /// Hosts the runs spread their ranks over (`--hosts`); with `networkFaults` (test hosts
    /// only) every run instead has a host's link broken for a while, in one of `networkKinds`
    /// (see `LinkFault`).
    public var hosts: LaunchHosts?
    public var networkFaults = false
    public var networkKinds = ChaosCampaign.networkKinds
    /// The network faults a campaign can draw.
    public static let networkKinds = ["link", "loss", "slow-link", "delay"]

    public init(model: String, layouts: [ParallelLayout], transports: [String] = ["zmq"], steps: Int, seed: UInt64,
                kinds: [Fault.Kind], directory: String) throws {
        guard steps >= 8 else { throw FleetError("--steps must be at least 8 (faults land from step 3, checkpoints every 5 steps)") }
        guard !kinds.isEmpty else { throw FleetError("--kinds names no fault kind") }
        guard !layouts.isEmpty, !transports.isEmpty else { throw FleetError("a campaign needs at least one layout and one transport") }
        for transport in transports where !["zmq", "mpi"].contains(transport) {
            throw FleetError("unknown transport '\(transport)'; choose zmq, mpi")
        }
        if transports.contains("mpi") && ChildProcess.which("mpirun") == nil {
            throw FleetError("--transports mpi needs mpirun on PATH (install OpenMPI), or use --transports zmq")
        }
        self.model = model
        self.layouts = layouts
        self.transports = transports
        self.steps = steps
        self.seed = seed
        self.kinds = kinds
        self.directory = directory
    }

    /// What a run of one layout trains; the reference is the same with one process.
    func arguments(_ layout: ParallelLayout) -> [String] {
        ["train", model, "--deterministic", "--steps", "\(steps)", "--seq", "64", "--eval-batches", "1", "--log-every", "1000"]
            + LayoutName.trainArguments(layout)
    }

    /// Runs the fault-free reference (one process) and returns its final parameters.
    public func reference() throws -> [Float] {
        let run = try ChildProcess.fleet(arguments(ParallelLayout()) + ["--run-dir", directory + "/reference"])
        guard run.status == 0 else { throw FleetError("the fault-free reference failed: \(run.stderr.suffix(800))", duringRun: true) }
        return try WeightsFile.load(directory + "/reference/final.weights").model.parameters.array
    }

    /// One planned run: its layout, transport and fault.
    public struct Plan: Sendable {
        public let layout: ParallelLayout
        public let transport: String
        /// The injected fault's kind (nil for a network fault).
        public let kind: Fault.Kind?
        public let rank: Int
        /// The `--inject` spec, or the network fault's description.
        public let spec: String
        public var link: LinkFault? = nil
    }

    /// The `count` runs of this campaign: layouts and transports in turn, faults drawn from
    /// the seed (the same for the same seed).
    public func plans(_ count: Int) -> [Plan] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func draw(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        return (0..<count).map { index in
            let layout = layouts[index % layouts.count], transport = transports[(index / layouts.count) % transports.count]
            if networkFaults, let hosts {
                let host = hosts.hosts[draw(hosts.hosts.count)].address, step = 3 + draw(steps - 5)
                let fault = switch networkKinds[draw(networkKinds.count)] {
                case "loss": LinkFault(host: host, kind: .loss(percent: 20 + 10 * draw(4)), step: step, seconds: 3 + draw(4))
                case "slow-link": LinkFault(host: host, kind: .slow(mbit: [10, 20, 50][draw(3)]), step: step, seconds: 3 + draw(4))
                // Delays a run rides out (slower steps), and one past the runs' 3 s deadline (a silent host).
                case "delay": LinkFault(host: host, kind: .delay(ms: [20, 100, 500, 5000][draw(4)]), step: step, seconds: 3 + draw(4))
                default: LinkFault(host: host, step: step, seconds: 2 + draw(7))
                }
                return Plan(layout: layout, transport: transport, kind: nil, rank: 0, spec: fault.description, link: fault)
            }
            let kind = kinds[draw(kinds.count)], rank = draw(layout.worldSize), step = 3 + draw(steps - 5)
            var spec = "\(kind.rawValue):rank=\(rank),step=\(step)"
            switch kind {
            case .slow: spec = "slow:rank=\(rank),factor=4,steps=2-\(steps)"
            case .delay: spec = "delay:rank=\(rank),ms=20,steps=\(step)-\(step + 2)"
            case .bitflip:
                // A flip in a parameter's low bits changes no check's outcome unless a replica holds
                // the same parameter to compare (--check-replicas); without one no check can see it.
                // Under ZeRO-3 no two ranks hold the same weights, and a flipped weight that stays
                // finite is silent corruption no check can see: only gradients are flipped there.
                let targets = [",target=gradient", ",target=parameter", ",target=parameter,bit=\(2 + draw(20))"]
                spec += targets[draw(layout.dp > 1 && layout.zeroStage >= 3 ? 1 : Self.replicated(layout) ? 3 : 2)]
            case .checkpoint: spec = "checkpoint:rank=\(rank),step=\(5 * (1 + draw(max(1, (steps - 1) / 5)))),mode=\(["full", "torn"][draw(2)])"
            default: break
            }
            return Plan(layout: layout, transport: transport, kind: kind, rank: rank, spec: spec)
        }
    }

    /// Network faults need tools on the hosts (`ip`, `nft`, `tc`): checked through the launch
    /// agent before any run, so a missing one is named instead of a fault that silently never happens.
    public func checkNetworkTools() throws {
        guard networkFaults, let host = hosts?.hosts.first?.address else { return }
        let tools = ["link": "ip", "loss": "nft", "slow-link": "tc"], packages = ["ip": "iproute2", "nft": "nftables", "tc": "iproute2"]
        if networkKinds.contains("delay") && (ProcessInfo.processInfo.environment[LinkFault.scriptVariable] ?? "").isEmpty {
            throw FleetError("network fault kind delay is made by scripts/test-hosts.sh, which fleet finds through \(LinkFault.scriptVariable): "
                             + "eval \"$(scripts/test-hosts.sh env)\" first, or leave delay out of --network-kinds")
        }
        for kind in networkKinds {
            guard let tool = tools[kind] else { continue }
            let found = try? ChildProcess.bounded("/usr/bin/env", LaunchHosts.agent() + [host, "command -v \(tool)"], timeout: 30)
            guard found?.status == 0 else {
                throw FleetError("network fault kind \(kind) needs \(tool) on the hosts (\(host) has none; apt-get install \(packages[tool]!)), or leave \(kind) out of --network-kinds")
            }
        }
    }

    /// Whether two ranks hold the same parameters between steps, so replicas can be compared.
    static func replicated(_ layout: ParallelLayout) -> Bool { layout.dp > 1 && layout.zeroStage < 3 }

    /// Run `number` as planned, judged against the reference's parameters.
    public func run(_ number: Int, _ plan: Plan, reference: [Float]) throws -> ChaosOutcome {
        let runDir = directory + "/run-\(number)"
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let channel = EventChannel(path: runDir + "/events.jsonl")
        var train: [String] = arguments(plan.layout) + ["--checkpoint-dir", runDir + "/ck", "--checkpoint-every", "5", "--timeout", "3", "--checksums",
                                                        "--run-dir", runDir + "/run"]
        if Self.replicated(plan.layout) { train += ["--check-replicas", "1"] }
        if plan.link == nil { train += ["--inject", plan.spec] }
        if let hosts {
            let list: [String] = hosts.hosts.map { "\($0.address):\($0.slots)" }
            train += ["--hosts", list.joined(separator: ",")]
        }
        // A network fault is made from outside the run, once it reaches the fault's step.
        let maker = plan.link.map { LinkFaultMaker($0, channel: channel) }
        defer { maker?.stop() }
        let environment = [EventChannel.variable: channel.path]
        let child: (status: Int32, stdout: String, stderr: String)
        if plan.transport == "mpi", let mpirun = ChildProcess.mpirun(ranks: plan.layout.worldSize, train) {
            // OpenMPI ends the whole job when a rank dies; fleet supervise restarts it with --resume.
            child = try ChildProcess.fleet(["supervise", "--max-restarts", "2", "--", mpirun.path] + mpirun.arguments,
                                           environment: mpirun.environment.merging(environment) { _, new in new })
        } else {
            child = try ChildProcess.fleet(train + ["--max-restarts", "2"], environment: environment)
        }
        // A fault that could not be made (a tool or the relay failing) leaves a run that proves nothing.
        let made = maker?.stop()
        let events = channel.read()
        var outcome = ChaosOutcome(run: number, fault: plan.spec)
        outcome.faultMade = made != false
        outcome.layout = plan.layout.description
        outcome.transport = plan.transport
        outcome.kind = plan.kind?.rawValue ?? plan.link?.kindName ?? "link"
        let failures = events.filter { $0.event == .attemptFailed }
        if let first = failures.first {
            outcome.detected = first.cause?.title ?? "failure"
            outcome.detectionSeconds = first.sinceLastStepSeconds
        } else if plan.kind == .slow {
            let named = events.contains { $0.event == .straggler && $0.rank == plan.rank }
            outcome.detected = named ? "straggler rank \(plan.rank)" : "straggler not named"
            outcome.missedDetection = !named
        } else if made == false {
            outcome.detected = "fault could not be made"
        } else if plan.link != nil {
            outcome.detected = "no failure: the run went on"
        } else {
            outcome.detected = "no effect on the result"
        }
        outcome.recomputedSteps = events.last { $0.event == .finished }?.recomputedSteps ?? 0
        let weights = try? WeightsFile.load(runDir + "/run/final.weights").model.parameters.array
        // Bit for bit (== on floats would let -0 pass for 0 and fail NaN against NaN).
        outcome.recovered = child.status == 0 && weights?.map(\.bitPattern) == reference.map(\.bitPattern)
        let checkpoints = CheckpointStore(directory: runDir + "/ck").complete()
        outcome.checkpoints = checkpoints.count
        outcome.checkpointsIntact = checkpoints.allSatisfy { (try? CheckpointStore.verify($0.path)) != nil }
        if !outcome.recovered { outcome.stderr = String(child.stderr.suffix(600)) }
        return outcome
    }
}

/// One chaos run: its fault, how it was detected, and whether it recovered bit for bit.
public struct ChaosOutcome: Sendable {
    public var run: Int
    public var fault: String
    public var kind = ""
    public var layout = ""
    public var transport = ""
    /// Complete checkpoints the run left (each verified).
    public var checkpoints = 0
    public var detected = ""
    public var detectionSeconds: Double?
    public var missedDetection = false
    public var recovered = false
    public var recomputedSteps = 0
    public var checkpointsIntact = true
    /// False when a network fault's commands or relay failed: the run was never faulted.
    public var faultMade = true
    /// The end of the run's error output when it did not recover.
    public var stderr = ""

    public var passed: Bool { recovered && checkpointsIntact && !missedDetection && faultMade }

    /// The table `fleet chaos` prints a row of per run.
    public static let table = Table(columns: [("run", 4), ("layout", 10), ("via", 3), ("fault", 46), ("detected", 30), ("detect s", 8),
                                              ("recovered", 9), ("lost", 5), ("ckpts", 6)])

    /// The run's row of `table`.
    public var cells: [String] {
        ["\(run)", layout, transport, fault, missedDetection ? "MISSED: " + detected : detected,
         detectionSeconds.map { String(format: "%.2f", $0) } ?? "—", recovered ? "yes" : "NO", "\(recomputedSteps)", checkpointsIntact ? "ok" : "BAD"]
    }

    /// The run as `fleet chaos --json` prints it.
    public var record: [(String, Any)] {
        [("run", run), ("kind", kind), ("fault", fault), ("layout", layout), ("transport", transport), ("detected", detected),
         ("detection_s", detectionSeconds ?? Double.nan), ("missed_detection", missedDetection), ("fault_made", faultMade), ("recovered", recovered),
         ("recomputed_steps", recomputedSteps), ("checkpoints", checkpoints), ("checkpoints_intact", checkpointsIntact), ("passed", passed)]
    }
}

/// A campaign's totals, per fault kind and transport and overall.
public struct ChaosSummary {
    public struct Row: Sendable {
        public let kind: String, transport: String
        public var runs = 0, detected = 0, recovered = 0, damagedCheckpoints = 0
    }
    public private(set) var rows: [Row] = []
    public let outcomes: [ChaosOutcome]

    public init(_ outcomes: [ChaosOutcome]) {
        self.outcomes = outcomes
        var rows: [Row] = []
        for o in outcomes {
            if !rows.contains(where: { $0.kind == o.kind && $0.transport == o.transport }) { rows.append(Row(kind: o.kind, transport: o.transport)) }
            let index = rows.firstIndex { $0.kind == o.kind && $0.transport == o.transport }!
            rows[index].runs += 1
            if !o.missedDetection { rows[index].detected += 1 }
            if o.recovered { rows[index].recovered += 1 }
            if !o.checkpointsIntact { rows[index].damagedCheckpoints += 1 }
        }
        self.rows = rows.sorted { ($0.kind, $0.transport) < ($1.kind, $1.transport) }
    }

    public var passed: Int { outcomes.filter(\.passed).count }

    /// The summary table's lines.
    public var lines: [String] {
        let table = Table(columns: [("fault", 10), ("transport", 9), ("runs", 5), ("detected", 8), ("recovered", 9), ("bad ckpts", 9)])
        var lines = [table.header()]
        for r in rows {
            lines.append(table.row([r.kind, r.transport, "\(r.runs)", "\(r.detected)", "\(r.recovered)", "\(r.damagedCheckpoints)"]))
        }
        let layouts = Set(outcomes.map(\.layout)).sorted().joined(separator: ", ")
        lines.append("\(passed) of \(outcomes.count) runs passed (recovered bitwise, detected, every complete checkpoint intact) over \(layouts)")
        return lines
    }

    /// The closing JSON object of `fleet chaos --json`.
    public var record: [(String, Any)] {
        [("summary", true), ("runs", outcomes.count), ("passed", passed), ("detected", outcomes.filter { !$0.missedDetection }.count),
         ("recovered", outcomes.filter(\.recovered).count), ("damaged_checkpoints", outcomes.filter { !$0.checkpointsIntact }.count),
         ("recomputed_steps", outcomes.reduce(0) { $0 + $1.recomputedSteps }),
         ("layouts", Set(outcomes.map(\.layout)).sorted()), ("transports", Set(outcomes.map(\.transport)).sorted()),
         ("kinds", Set(outcomes.map(\.kind)).sorted())]
    }
}
