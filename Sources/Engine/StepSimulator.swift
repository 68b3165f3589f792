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
        self.scenario = scenario
        network = scenario.fidelity == .flow ? FlowNetwork(fabric: scenario.fabric) as NetworkModel : AnalyticalNetwork(fabric: scenario.fabric)
        collectives = CollectiveModel(network: network)
    }

    /// Costs of one micro-batch's pass through one chunk of a stage (the whole stage unless interleaved).
    struct PassCost {
        var forward = SimTime.zero, backward = SimTime.zero
        var tensorForward = SimTime.zero, tensorBackward = SimTime.zero
        /// Tensor-parallel all-reduces in a forward and a backward pass (each a meeting of the group).
        var tensorSyncs = (forward: 0, backward: 0)
    }

    /// Per-stage costs: each chunk's passes, the gradient sum's buckets and the optimizer.
    struct StageCost {
        var chunks: [PassCost] = []
        var gradientBytes = 0.0, optimizer = SimTime.zero
        var dataParallel: [SimTime] = []
        /// The chunk whose last backward pass starts each bucket.
        var bucketChunks: [Int] = []
    }

    /// Simulates every pipeline (each data-parallel replica's each tensor shard's chain of
    /// stages, with its own routes) and reports the slowest: what the one-pipeline
    /// reduction of `run()` stands for, checked against it in tests; O(dp · tp) times the work.
    public func runEveryPipeline() -> StepReport {
        let layout = scenario.layout
        var slowest: StepReport?
        for dp in 0..<layout.dp {
            for tp in 0..<layout.tp {
                let report = run(pipeline: (dp, tp), everyPipeline: true)
                if slowest == nil || report.stepTime > slowest!.stepTime { slowest = report }
            }
        }
        return slowest!
    }

    /// Simulates one pipeline as the representative of all.
    public func run(pipeline which: (dp: Int, tp: Int), everyPipeline: Bool = false) -> StepReport {
        let s = scenario, layout = s.layout, model = s.model, mesh = layout.mesh
        var choices: [String] = []
        let microSequences = s.batch / layout.dp / layout.microbatches
        let tokens = Double(microSequences * s.sequence), bytes = Double(s.precision.bytes)
        let c = Double(model.dModel)
        let representative = (0..<layout.pp).map { mesh.rank(dp: which.dp, tp: which.tp, pp: $0) }
        var ledger = LinkLedger(fabric: network.fabric)
        let plan = ShardPlan(model: model, layout: layout, zero: s.zero)

        // Each representative rank's step, from the one plan the trainer runs.
        let options = StepOptions(batch: s.batch, sequence: s.sequence, bytesPerElement: s.precision.bytes,
                                  bucketBytes: max(1, Int(s.bucketBytes)), recompute: s.recompute == .full)
        let programs = representative.map { StepProgram(plan: plan, rank: $0, options: options) }
        var costs: [StageCost] = []
        for (index, program) in programs.enumerated() {
            var cost = StageCost()
            // What one rank of this stage holds, from the shard plan (its share of split
            // parameters, all replicated ones, the embeddings, final norm and head where they live).
            let local = Double(plan.heldElements(stage: index))
            let recompute = s.recompute == .full ? 1.0 : 0.0
            let tpGroup = mesh.tpGroup(of: representative[index])
            // The tensor-parallel group meets at every layer, so it computes at its slowest
            // member's pace: each distinct (device, slowdown) of the group is priced.
            let members = s.kinds(of: tpGroup)
            func slowest(_ price: (Device) -> SimTime) -> SimTime {
                members.map { m in m.slowdown == 1 ? price(m.device) : SimTime(seconds: price(m.device).seconds * m.slowdown) }.max() ?? .zero
            }
            for (chunk, work) in zip(program.chunks, program.chunkWork) {
                var pass = PassCost()
                // Weights are read once per pass through a chunk: its share of what the stage holds.
                let share = Double(chunk.count) / Double(max(1, program.chunks.reduce(0) { $0 + $1.count }))
                let flops = (forward: work.forward.reduce(.zero) { $0 + $1.flops }, backward: work.backward.reduce(.zero) { $0 + $1.flops })
                let traffic = local * share * bytes + tokens * c * Double(chunk.count) * 16 * bytes / Double(layout.tp)
                // A measured CPU: the trainer's own kernels, each at its measured rate; else the roofline.
                pass.forward = slowest { device in
                    device.calibration.map { SimTime(seconds: $0.stepSeconds(KernelWork(work.forward))) }
                        ?? device.time(flops: flops.forward, bytes: traffic, precision: s.precision, efficiency: s.efficiency)
                }
                pass.backward = slowest { device in
                    device.calibration.map { SimTime(seconds: $0.stepSeconds(KernelWork(work.backward))) }
                        ?? device.time(flops: flops.backward, bytes: (2 + recompute) * traffic, precision: s.precision, efficiency: s.efficiency)
                }
                // Tensor-parallel all-reduces inside the passes, as the plan places them.
                func tensorBytes(_ ops: [StepOp]) -> [Bytes] {
                    ops.compactMap { if case let .collective(_, .tensor, bytes) = $0 { return bytes } else { return nil } }
                }
                let tensor = (forward: tensorBytes(work.forward), backward: tensorBytes(work.backward))
                let tpBytes = (tensor.forward.first ?? tensor.backward.first ?? .zero).value
                let oneTP = timedCollective(.all, tpGroup, bytes: tpBytes, algorithm: s.tensorParallelAlgorithm, what: "tensor-parallel all-reduce", into: &choices)
                pass.tensorSyncs = (tensor.forward.count, tensor.backward.count)
                pass.tensorForward = oneTP * tensor.forward.count
                pass.tensorBackward = oneTP * tensor.backward.count
                if layout.tp > 1 { ledger.ring(tpGroup, bytes: tpBytes, times: (tensor.forward.count + tensor.backward.count) * layout.microbatches) }
                cost.chunks.append(pass)
            }
            // Data parallelism: this stage's buckets, in the order the backward pass finishes them.
            let sync = program.sync
            cost.gradientBytes = Double(sync.heldElements) * bytes
            let dpGroup = mesh.dpGroup(of: representative[index])
            if layout.dp > 1 {
                // Under flow-level fidelity every tensor shard's dp group of this stage syncs at
                // the same time and they share links; identical buckets are timed once.
                let concurrent = s.fidelity == .flow && s.zero == 0 && s.dataParallelAlgorithm == .ring
                let peers = (0..<layout.tp).map { mesh.dpGroup(of: mesh.rank(dp: 0, tp: $0, pp: index)) }
                var timed: [Double: SimTime] = [:]
                for bucket in sync.buckets {
                    let size = Double(bucket.held.count) * bytes
                    let time = timed[size] ?? (concurrent ? collectives.concurrentRingAllReduce(peers, bytes: size)
                        : sync.kind == .reduceScatter
                            ? timedCollective(.reduceScatter, dpGroup, bytes: size, algorithm: s.dataParallelAlgorithm, what: "data-parallel reduce-scatter", into: &choices)
                            : timedCollective(.all, dpGroup, bytes: size, algorithm: s.dataParallelAlgorithm, what: "data-parallel all-reduce", into: &choices))
                    timed[size] = time
                    cost.dataParallel.append(time + bucketSynchronization(group: layout.dp))
                    cost.bucketChunks.append(sync.chunk(of: bucket))
                }
                ledger.ring(dpGroup, bytes: cost.gradientBytes, times: s.zero >= 1 ? 1 : 2, halfRing: s.zero >= 1)
            }
            // AdamW: read and write weights, master copy, moments and gradients (memory-bound).
            var updated = 0.0
            var gathers: [Double] = []
            for op in program.blocks.last(where: { $0.phase == .optimizer })?.ops ?? [] {
                if case let .optimizer(parameters) = op { updated += Double(parameters) }
                if case let .collective(.allGather, .data, bytes) = op { gathers.append((bytes * layout.dp).value) }
            }
            cost.optimizer = slowest { device in
                device.calibration.map { SimTime(seconds: updated * ($0.perElement[.optimizer] ?? 0)) }
                    ?? device.time(flops: .zero, bytes: updated * 32, precision: s.precision, efficiency: s.efficiency)
            }
            // ZeRO: the updated parameters are all-gathered, bucket by bucket.
            var timed: [Double: SimTime] = [:]
            for size in gathers {
                let time = timed[size] ?? timedCollective(.allGather, dpGroup, bytes: size, algorithm: s.dataParallelAlgorithm, what: "ZeRO all-gather", into: &choices)
                timed[size] = time
                cost.optimizer += time
            }
            costs.append(cost)
        }

        let activationBytes = tokens * c * bytes
        let stageTraffic = programs.map { program -> StepReport.StageTraffic in
            let totals = program.totals
            return StepReport.StageTraffic(parameters: plan.heldElements(stage: program.stage), flops: totals.flops,
                                           dataParallelBytes: layout.dp > 1 ? Bytes(elements: program.sync.heldElements, of: s.precision.bytes) : .zero,
                                           tensorParallelBytes: totals.collectiveBytes[.tensor] ?? .zero, pipelineBytes: totals.sentBytes)
        }
        let schedule = layout.pipeline
        var pipeline = PipelineRun(schedule: schedule, costs: costs, network: network,
                                   gpus: representative, messageBytes: activationBytes, sharing: sharing(representative))
        pipeline.run()
        // Every virtual stage hands each micro-batch's activations on and its gradients back.
        for k in 0..<(schedule.virtualStageCount - 1) {
            let from = representative[schedule.stage(ofVirtual: k)], to = representative[schedule.stage(ofVirtual: k + 1)]
            ledger.add(Message(from: from, to: to, bytes: activationBytes), times: layout.microbatches)
            ledger.add(Message(from: to, to: from, bytes: activationBytes), times: layout.microbatches)
        }

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
            let passes = (b.compute + b.tensorParallel).seconds
            let idle = max(0, makespan - passes - (b.dataParallelExposed + b.optimizer).seconds)
            totalIdle += idle
            scheduleTime += idle + passes
        }
        let globalTokens = Double(s.batch * s.sequence)
        let modelFLOPs = model.trainingFLOPsPerToken(sequence: s.sequence) * globalTokens
        let inFlight = (try? schedule.check())?.peakInFlightActivations ?? Array(repeating: layout.microbatches * schedule.virtualStages, count: layout.pp)
        let memory = MemoryModel.estimate(model: model, layout: layout, zero: s.zero, microbatchSequences: microSequences, sequence: s.sequence,
                                          precision: s.precision, recompute: s.recompute, flashAttention: s.flashAttention, inFlight: inFlight)
        var reductions: String
        if everyPipeline {
            reductions = "all \(layout.dp * layout.tp) pipelines simulated, the slowest (dp \(which.dp), tp \(which.tp)) reported"
        } else {
            reductions = "one pipeline of \(layout.pp) stage(s) simulated event by event; its \(layout.dp * layout.tp - 1) data- and tensor-parallel peers are taken as identical"
        }
        reductions += ", and each collective is timed on its real group's routes"
        if s.fidelity == .flow {
            reductions += "; data-parallel buckets share links with the stage's other tensor shards' groups, "
                + "one ring step timed per distinct bucket size (every step of a ring is identical)"
        }
        var report = StepReport(stepTime: step, tokensPerSecond: globalTokens / step.seconds,
                          mfu: modelFLOPs / (Double(s.gpus) * s.device.peak(s.precision) * step.seconds),
                          breakdown: breakdown, bubbleFraction: scheduleTime > 0 ? totalIdle / scheduleTime : 0, memory: memory,
                          busiestLinks: ledger.busiest(5, over: step), spans: pipeline.spans, events: pipeline.events,
                          fidelity: network.fidelity,
                          reductions: reductions)
        report.stages = stageTraffic
        report.collectiveChoices = choices
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
    public func bucketSynchronization(group: Int) -> SimTime {
        guard let c = scenario.device.calibration else { return .zero }
        let meetings = group > c.cores ? 2 * (group - 1) : 1
        let perNode = Double(min(scenario.gpusPerNode, scenario.layout.worldSize))
        let wait = c.pinned ? c.meetingWait(busy: (perNode / Double(c.cores)).rounded(.up), cores: 1) : c.meetingWait(busy: perNode, cores: Double(c.cores))
        return SimTime(seconds: Double(meetings) * wait)
    }

    /// Processor sharing on a calibrated CPU device: for each simulated stage, how many ranks
    /// of every stage run on its node (nil when ranks have cores of their own).
    func sharing(_ representative: [Int]) -> PipelineRun.Sharing? {
        guard let calibration = scenario.device.calibration, calibration.cores <= scenario.gpusPerNode else { return nil }
        let cores = calibration.cores, mesh = scenario.layout.mesh, perNode = scenario.gpusPerNode
        // Pinned: the ranks of a node on the same core (local index mod cores) share it.
        func shares(_ a: Int, _ b: Int) -> Bool { !calibration.pinned || (a % perNode) % cores == (b % perNode) % cores }
        let peers = representative.map { rank -> [Double] in
            let node = rank / perNode
            var count = Array(repeating: 0.0, count: representative.count)
            for other in node * perNode..<min((node + 1) * perNode, mesh.worldSize) where shares(rank, other) { count[mesh.coordinates(of: other).pp] += 1 }
            return count
        }
        return PipelineRun.Sharing(cores: calibration.pinned ? 1 : Double(cores), peers: peers, calibration: calibration)
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
