import Parallelism
import Workload

/// Simulates one step of a scenario: each pipeline stage executes its program from the same
/// `PipelineSchedule` the real trainer runs, as events on one clock — forward and backward
/// kernels (roofline) with their tensor-parallel all-reduces, activation and gradient
/// messages over the fabric, data-parallel buckets overlapped with the last backward, the
/// optimizer, and the amortised checkpoint stall.
public struct StepSimulator {
    public let scenario: Scenario
    public let network: NetworkModel
    let collectives: CollectiveModel

    public init(scenario: Scenario) {
        var scenario = scenario
        // A measured CPU: its kernels as fast as the machine's busy cores let them be.
        if let calibration = scenario.device.calibration {
            let onMachine = calibration.coresSharedByNodes ? scenario.layout.worldSize : min(scenario.gpusPerNode, scenario.layout.worldSize)
            scenario.device.calibration = calibration.underLoad(ranks: onMachine)
        }
        self.scenario = scenario
        network = scenario.fidelity == .flow ? FlowNetwork(fabric: scenario.fabric) as NetworkModel : AnalyticalNetwork(fabric: scenario.fabric)
        collectives = CollectiveModel(network: network)
    }

    /// Costs of one micro-batch's pass through one chunk of a stage (the whole stage unless interleaved).
    struct PassCost {
        var forward = SimTime.zero, backward = SimTime.zero
        /// The tensor-parallel collectives of a forward and a backward pass.
        var tensorCollectives: [StepPricing.TensorCollective] = []
        var tensorForward = SimTime.zero, tensorBackward = SimTime.zero
        /// Times a forward and a backward pass meets its tensor-parallel group: its collectives,
        /// those back to back (nothing computed between) counted once.
        var tensorSyncs = (forward: 0, backward: 0)
        /// Expert parallelism: each all-to-all's bytes (all a member hands in), and their times in a forward and a backward pass.
        var expertExchanges: [Double] = []
        var expertForward = SimTime.zero, expertBackward = SimTime.zero
        /// Context parallelism: the ring's collectives, and what of them a forward and a backward pass's attention cannot hide.
        var ringCollectives: [StepPricing.TensorCollective] = []
        var ringForward = SimTime.zero, ringBackward = SimTime.zero
        /// The ring's meetings with the context-parallel group (each may wait for a peer on a shared CPU).
        var ringSyncs = (forward: 0, backward: 0)
        /// ZeRO-3: each unit's weight all-gather in a forward and a backward pass, in the order used.
        var gatherForward: [SimTime] = [], gatherBackward: [SimTime] = []

        /// What of a pass's unit gathers its compute cannot hide: each gather is started one unit
        /// ahead (the first before the pass) and hides behind the previous unit's share of
        /// the compute; a gather longer than that share holds the pass up by the difference.
        func exposedGathers(_ gathers: [SimTime], compute: SimTime) -> SimTime {
            guard let first = gathers.first else { return .zero }
            let share = compute.seconds / Double(gathers.count)
            return gathers.dropFirst().reduce(first) { $0 + SimTime(seconds: max(0, $1.seconds - share)) }
        }
    }

    /// Per-stage costs: each chunk's passes, the gradient sum's buckets and the optimizer.
    struct StageCost {
        var chunks: [PassCost] = []
        var gradientBytes = 0.0, optimizer = SimTime.zero
        var dataParallel: [SimTime] = []
        /// The chunk whose last backward pass starts each bucket.
        var bucketChunks: [Int] = []
    }

    /// Simulates one pipeline as the representative of all (`pricing` shares what several runs
    /// of one scenario have in common).
    public func run(pipeline which: (dp: Int, tp: Int), everyPipeline: Bool = false) -> StepReport {
        run(pipeline: which, pricing: StepPricing(simulator: self), everyPipeline: everyPipeline)
    }

    func run(pipeline which: (dp: Int, tp: Int), pricing: StepPricing, everyPipeline: Bool = false) -> StepReport {
        let s = scenario, layout = s.layout, model = s.model, mesh = layout.mesh
        let microSequences = layout.sequencesPerMicrobatch(batch: s.batch)
        let representative = (0..<layout.pp).map { mesh.rank(dp: which.dp, tp: which.tp, pp: $0) }
        let plan = pricing.plan
        // Each representative rank's step, from the one plan the trainer runs.
        let programs = representative.map { StepProgram(plan: plan, rank: $0, options: pricing.options) }
        let costs = stageCosts(pipeline: which, pricing: pricing)
        let ledger = ledger(pipeline: representative, costs: costs)

        let stageTraffic = programs.map { program -> StepReport.StageTraffic in
            let totals = program.totals
            return StepReport.StageTraffic(parameters: plan.heldElements(stage: program.stage), flops: totals.flops,
                                           dataParallelBytes: layout.dp > 1 ? Bytes(elements: program.sync.heldElements, of: s.precision.bytes) : .zero,
                                           tensorParallelBytes: totals.collectiveBytes[.tensor] ?? .zero, pipelineBytes: totals.sentBytes)
        }
        let schedule = layout.pipeline
        var pipeline = PipelineRun(schedule: schedule, costs: costs, transfer: { pricing.transfer(from: representative[$0], to: representative[$1]) },
                                   sharing: sharing(representative))
        pipeline.run()

        // Checkpoint: the full training state, written by every GPU of the first replica.
        var checkpoint = SimTime.zero, checkpointWrite = SimTime.zero, contention = SimTime.zero
        // Saves of the step's own schedule, or of the reliability simulation's asynchronous checkpoints.
        let asyncSaves = s.checkpointAsync || s.reliability?.checkpointing == .async
        if s.checkpointEvery > 0 || asyncSaves, let storage = s.storage {
            let state = s.checkpointBytes, writers = s.checkpointWriters
            checkpointWrite = s.checkpointWriteTime(storage)
            var stall = asyncSaves ? storage.snapshot.time(state / writers) : checkpointWrite
            if asyncSaves, s.fidelity == .flow, storage.sharedFabric, layout.dp > 1 {
                // The background write leaves through the writers' NICs while training goes on:
                // data-parallel ring steps that cross those NICs slow down for as long as it lasts.
                let flow = FlowNetwork(fabric: network.fabric, storage: storage)
                let writes = (0..<layout.pp).flatMap { pp in (0..<layout.tp).map { tp in
                    FlowNetwork.StorageWrite(from: mesh.rank(dp: 0, tp: tp, pp: pp), bytes: state / writers)
                } }
                checkpointWrite = SimTime(seconds: flow.completions([], writes: writes).writes.max() ?? 0)
                var extra = SimTime.zero
                for (index, cost) in costs.enumerated() where !cost.dataParallel.isEmpty {
                    let groups = (0..<layout.tp).map { mesh.dpGroup(of: mesh.rank(dp: 0, tp: $0, pp: index)) }
                    let n = groups[0].count
                    var ring: [Message] = []
                    for (g, group) in groups.enumerated() {
                        for i in group.indices { ring.append(Message(from: group[i], to: group[(i + 1) % n], bytes: s.bucketBytes / Double(n), flow: UInt64(g * n + i))) }
                    }
                    let perStep = flow.time(ring, alongside: writes) - flow.time(ring)
                    extra = max(extra, perStep * (2 * (n - 1)) * cost.dataParallel.count)
                }
                let stepEstimate = max(pipeline.finish.max() ?? .zero, SimTime(nanoseconds: 1))
                let affected = min(s.checkpointEvery > 0 ? s.checkpointEvery : Int.max, Int((checkpointWrite.seconds / stepEstimate.seconds).rounded(.up)))
                contention = extra * max(affected, 1)
                stall += contention
            }
            if s.checkpointEvery > 0 { checkpoint = SimTime(nanoseconds: stall.nanoseconds / Int64(s.checkpointEvery)) }
        }

        let slowest = pipeline.finish.indices.max { pipeline.finish[$0] < pipeline.finish[$1] } ?? 0
        let busy = (pipeline.finish.max() ?? .zero) + checkpoint
        let dataStall = s.data.map { max(.zero, $0.readTime(s) - busy) } ?? .zero
        let step = busy + dataStall
        var breakdown = pipeline.breakdown[slowest]
        breakdown.dataStall = dataStall
        breakdown.checkpoint = checkpoint
        breakdown.checkpointWrite = checkpointWrite
        breakdown.checkpointContention = contention
        // Idle: what each stage does not spend computing, communicating or updating before the
        // pipeline's last stage finishes — the waits for messages and the drain at the end —
        // as a share of the schedule's part of the step (idle plus forward and backward passes).
        let makespan = (pipeline.finish.max() ?? .zero).seconds
        var totalIdle = 0.0, scheduleTime = 0.0
        for b in pipeline.breakdown {
            let passes = (b.compute + b.tensorParallel + b.expertAllToAll + b.contextParallel).seconds
            let idle = max(0, makespan - passes - (b.dataParallelExposed + b.optimizer).seconds)
            totalIdle += idle
            scheduleTime += idle + passes
        }
        let globalTokens = Double(s.batch * s.sequence)
        let modelFLOPs = model.trainingFLOPsPerToken(sequence: s.sequence) * globalTokens
        let inFlight = (try? schedule.check())?.peakInFlightActivations ?? Array(repeating: layout.microbatches * schedule.virtualStages, count: layout.pp)
        let memoryStages = MemoryModel.stages(model: model, layout: layout, zero: s.zero, microbatchSequences: microSequences, sequence: s.sequence,
                                              precision: s.precision, recompute: s.recompute, flashAttention: s.flashAttention, inFlight: inFlight)
        let memory = memoryStages.reduce(MemoryEstimate(weights: 0, gradients: 0, optimizer: 0, activations: 0, stage: 0)) { $1.total > $0.total ? $1 : $0 }
        var reductions: String
        if everyPipeline {
            reductions = "full fidelity: all \(layout.dp * layout.tp) pipelines simulated event by event on their own GPUs and routes, "
                + "the slowest (dp \(which.dp), tp \(which.tp)) reported, its data-parallel peers waiting for it"
        } else {
            reductions = "one pipeline of \(layout.pp) stage(s) simulated event by event; its \(layout.dp * layout.tp - 1) data- and tensor-parallel peers are taken as identical"
        }
        reductions += ", and each collective is timed on its real group's routes"
        if s.fidelity == .flow {
            reductions += "; data-parallel buckets share links with the stage's other tensor shards' groups, "
                + "one ring step timed per distinct bucket size (every step of a ring is identical)"
        }
        var report = StepReport(stepTime: step, tokensPerSecond: globalTokens / step.seconds,
                          mfu: modelFLOPs / (s.fleetPeak * step.seconds),
                          breakdown: breakdown, bubbleFraction: scheduleTime > 0 ? totalIdle / scheduleTime : 0, memory: memory,
                          busiestLinks: ledger.busiest(5, over: step), spans: pipeline.spans, events: pipeline.events,
                          fidelity: network.fidelity,
                          reductions: reductions)
        report.stages = stageTraffic
        report.collectiveChoices = pricing.choices
        report.memoryStages = memoryStages
        return report
    }
}

extension StepSimulator {
    /// A collective timed by `algorithm`; with `auto`, the fastest is timed and what it picked is noted once.
    func timedCollective(_ part: CollectiveModel.Part, _ group: [Int], bytes: Double, algorithm: CollectiveModel.Algorithm,
                         what: String, into choices: inout [String]) -> SimTime {
        guard algorithm == .auto, group.count > 1, bytes > 0 else { return collectives.time(part, group, bytes: bytes, algorithm: algorithm) }
        let (chosen, time) = collectives.fastest(group, bytes: bytes, part: part)
        let note = "\(what) of \(StepReport.format(bytes: bytes)) over \(group.count): \(chosen.rawValue)"
        if !choices.contains(note) { choices.append(note) }
        return time
    }

    /// A data-parallel bucket's waits on a calibrated CPU, every rank of the node busy: a ring
    /// over more ranks than cores cannot take a step without a context switch (2(g − 1)
    /// meetings); a smaller group meets once.
    /// `acrossNodes`: the group spans nodes (its meetings wait as measured between nodes); asked
    /// only of a calibrated CPU (a group of a 100,000-GPU fleet is costly to look over per bucket).
    public func bucketSynchronization(group: Int, acrossNodes: @autoclosure () -> Bool = false) -> SimTime {
        guard let c = scenario.device.calibration else { return .zero }
        let acrossNodes = c.networkMeetingWait != nil && acrossNodes()
        let meetings = group > c.cores ? 2 * (group - 1) : 1
        let perNode = Double(min(coreSharingSpan(c), scenario.layout.worldSize))
        let wait = c.pinned ? c.meetingWait(busy: (perNode / Double(c.cores)).rounded(.up), cores: 1, acrossNodes: acrossNodes)
            : c.meetingWait(busy: perNode, cores: Double(c.cores), acrossNodes: acrossNodes)
        return SimTime(seconds: Double(meetings) * wait)
    }

    /// Whether `ranks` sit on more than one node.
    func spansNodes(_ ranks: [Int]) -> Bool {
        Set(ranks.map { $0 / scenario.gpusPerNode }).count > 1
    }

    /// Processor sharing on a calibrated CPU device: for each simulated stage, how many ranks
    /// of every stage run on its node (nil when ranks have cores of their own).
    func sharing(_ representative: [Int]) -> PipelineRun.Sharing? {
        guard let calibration = scenario.device.calibration, calibration.cores <= coreSharingSpan(calibration) else { return nil }
        let cores = calibration.cores, mesh = scenario.layout.mesh, perNode = coreSharingSpan(calibration)
        // Pinned: the ranks of a node on the same core (local index mod cores) share it.
        func shares(_ a: Int, _ b: Int) -> Bool { !calibration.pinned || (a % perNode) % cores == (b % perNode) % cores }
        let peers = representative.map { rank -> [Double] in
            let node = rank / perNode
            var count = Array(repeating: 0.0, count: representative.count)
            for other in node * perNode..<min((node + 1) * perNode, mesh.worldSize) where shares(rank, other) { count[mesh.coordinates(of: other).pp] += 1 }
            return count
        }
        var sharing = PipelineRun.Sharing(cores: calibration.pinned ? 1 : Double(cores), peers: peers, calibration: calibration)
        sharing.tensorAcrossNodes = representative.map { spansNodes(mesh.tpGroup(of: $0)) }
        sharing.contextAcrossNodes = representative.map { spansNodes(mesh.cpGroup(of: $0)) }
        sharing.pipelineAcrossNodes = representative.map { a in representative.map { b in spansNodes([a, b]) } }
        return sharing
    }

    /// How many consecutive ranks share one set of `cores`: a node's, or on test hosts (one
    /// machine's namespaces) every rank of the world.
    func coreSharingSpan(_ calibration: KernelCalibration) -> Int {
        calibration.coresSharedByNodes ? max(scenario.layout.worldSize, scenario.gpusPerNode) : scenario.gpusPerNode
    }
}

/// Bytes crossing each link, for the busiest-links report.
struct LinkLedger {
    let fabric: Fabric
    private(set) var bytes: [LinkID: Double] = [:]

    init(fabric: Fabric) { self.fabric = fabric }

    mutating func add(_ message: Message, times: Int) {
        for link in fabric.route(from: message.from, to: message.to, flow: message.flow) { bytes[link, default: 0] += message.bytes * Double(times) }
    }

    /// A ring all-reduce (or, with `halfRing`, a reduce-scatter) of `bytes` over `group`, `times` times.
    mutating func ring(_ group: [Int], bytes total: Double, times: Int, halfRing: Bool = false) {
        guard group.count > 1 else { return }
        let steps = (halfRing ? 1 : 2) * (group.count - 1), block = total / Double(group.count)
        for i in group.indices { add(Message(from: group[i], to: group[(i + 1) % group.count], bytes: block, flow: UInt64(i)), times: steps * times) }
    }

    func busiest(_ count: Int, over step: SimTime) -> [StepReport.LinkLoad] {
        bytes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(count).map { link, total in
            StepReport.LinkLoad(link: link, bytes: total, utilization: total / (fabric.link(link).bandwidth.bytesPerSecond * step.seconds))
        }
    }
}
