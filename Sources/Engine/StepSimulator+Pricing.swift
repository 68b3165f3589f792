import Parallelism
import Workload

/// What pricing many pipelines of one step shares, each piece looked up by exactly what
/// determines it — not by assuming symmetry: a stage's program (the same on every rank of the
/// stage but for the ZeRO block it updates), a collective's time on its group (a group is
/// named by the mesh coordinates that pick it), a message's time between two GPUs.
final class StepPricing {
    /// One stage's program and what the simulator reads from it, per chunk.
    struct StageWork {
        let program: StepProgram
        let flops: [(forward: FLOPs, backward: FLOPs)]
        let kernels: [(forward: KernelWork, backward: KernelWork)]
        let tensor: [(forward: [TensorCollective], backward: [TensorCollective])]
        /// Per chunk, the times a forward and a backward pass meets its tensor-parallel group (see `meetings`).
        let meetings: [(forward: Int, backward: Int)]
        let ringMeetings: [(forward: Int, backward: Int)]
        /// ZeRO-3's weight all-gathers per pass: each bucket's group and this rank's block of it.
        let gathers: [(forward: [(group: StepGroup, block: Bytes)], backward: [(group: StepGroup, block: Bytes)])]
        /// Expert parallelism's all-to-alls per pass, as the bytes each member hands in.
        let exchanges: [(forward: [Double], backward: [Double])]
        /// Context parallelism's ring collectives per pass (K/V gathered; backward their gradients
        /// reduce-scattered), whole buffers, and the attention FLOPs of the pass they overlap.
        let ring: [(forward: [TensorCollective], backward: [TensorCollective])]
        let attention: [(forward: FLOPs, backward: FLOPs)]
        let held: Double
        let buckets: [Double]
    }

    /// A collective's group: the tensor-parallel group of replica `dp` at `stage`, the
    /// data-parallel group of shard `tp` (every shard's at once under flow-level sharing: tp −1),
    /// an expert-parallel group (numbered by its block of data-parallel indices and its shard), or
    /// the ranks holding the same experts (numbered by their position in their expert-parallel group and shard).
    struct GroupKey: Hashable {
        enum Kind: Hashable { case tensor, data, expert, expertData, context }
        let kind: Kind, index: Int, stage: Int, bytes: Double, part: Int
    }

    struct Pair: Hashable { let from: Int, to: Int }

    /// A tensor-parallel collective inside a pass: its kind and the whole buffer it sums or
    /// gathers (an all-gather's plan bytes are one member's block).
    struct TensorCollective: Hashable {
        let kind: CollectiveKind
        let bytes: Double

        var part: CollectiveModel.Part { kind == .allGather ? .allGather : kind == .reduceScatter ? .reduceScatter : .all }
        var name: String { kind == .allGather ? "all-gather" : kind == .reduceScatter ? "reduce-scatter" : "all-reduce" }
    }

    private let simulator: StepSimulator
    /// The scenario's shard plan and step options, which every rank's program is made from.
    let plan: ShardPlan
    let options: StepOptions
    private var stages: [Int: StageWork] = [:]
    private var collectives: [GroupKey: SimTime] = [:]
    private var transfers: [Pair: SimTime] = [:]
    /// What `auto` picked for each kind of collective, in the order first met.
    private(set) var choices: [String] = []

    init(simulator: StepSimulator) {
        self.simulator = simulator
        let s = simulator.scenario
        plan = ShardPlan(model: s.model, layout: s.layout, zero: s.zero)
        options = StepOptions(batch: s.batch, sequence: s.sequence, bytesPerElement: s.precision.bytes,
                              bucketBytes: max(1, Int(s.bucketBytes)), recompute: s.recompute == .full, hotExpert: s.hotExpert)
    }

    func stage(_ stage: Int) -> StageWork {
        if let work = stages[stage] { return work }
        let s = simulator.scenario, layout = s.layout
        let program = StepProgram(plan: plan, rank: layout.mesh.rank(dp: 0, tp: 0, pp: stage), options: options)
        let chunkWork = program.chunkWork
        func tensorBytes(_ ops: [StepOp]) -> [TensorCollective] {
            ops.compactMap { op in
                guard case let .collective(kind, .tensor, bytes) = op else { return nil }
                return TensorCollective(kind: kind, bytes: (kind == .allGather ? bytes * layout.tp : bytes).value)
            }
        }
        // A rank meets its group where it computed since it last met it: collectives back to back
        // (sequence parallelism's reduce-scatter and the next norm's all-gather) meet once. Ring
        // attention's passes meet the context-parallel group in the same way.
        func meetings(_ ops: [StepOp], _ kind: StepGroup = .tensor) -> Int {
            var count = 0, computed = true
            for op in ops {
                if case let .collective(_, group, _) = op, group == kind {
                    if computed { count += 1 }
                    computed = false
                } else if op.flops > .zero {
                    computed = true
                }
            }
            return count
        }
        func ringCollectives(_ ops: [StepOp]) -> [TensorCollective] {
            ops.compactMap { op in
                guard case let .collective(kind, .context, bytes) = op else { return nil }
                return TensorCollective(kind: kind, bytes: (kind == .allGather ? bytes * layout.cp : bytes).value)
            }
        }
        func attentionFLOPs(_ ops: [StepOp]) -> FLOPs {
            ops.reduce(.zero) { total, op in
                guard case let .kernel(kind, _, flops) = op, kind == .attentionForward || kind == .attentionBackward else { return total }
                return total + flops
            }
        }
        func exchangeBytes(_ ops: [StepOp]) -> [Double] {
            ops.compactMap { if case let .collective(.allToAll, .expert, bytes) = $0 { return bytes.value } else { return nil } }
        }
        func gatherBytes(_ ops: [StepOp]) -> [(group: StepGroup, block: Bytes)] {
            ops.compactMap { op in
                guard case let .collective(.allGather, group, bytes) = op, group == .data || group == .expertData else { return nil }
                return (group, bytes)
            }
        }
        let work = StageWork(program: program,
                             flops: chunkWork.map { ($0.forward.reduce(.zero) { $0 + $1.flops }, $0.backward.reduce(.zero) { $0 + $1.flops }) },
                             kernels: chunkWork.map { (KernelWork($0.forward), KernelWork($0.backward)) },
                             tensor: chunkWork.map { (tensorBytes($0.forward), tensorBytes($0.backward)) },
                             meetings: chunkWork.map { (meetings($0.forward), meetings($0.backward)) },
                             ringMeetings: chunkWork.map { (meetings($0.forward, .context), meetings($0.backward, .context)) },
                             gathers: chunkWork.map { (gatherBytes($0.forward), gatherBytes($0.backward)) },
                             exchanges: chunkWork.map { (exchangeBytes($0.forward), exchangeBytes($0.backward)) },
                             ring: chunkWork.map { (ringCollectives($0.forward), ringCollectives($0.backward)) },
                             attention: chunkWork.map { (attentionFLOPs($0.forward), attentionFLOPs($0.backward)) },
                             held: Double(plan.heldElements(stage: stage)),
                             buckets: program.sync.buckets.map { Double($0.held.count) * Double(s.precision.bytes) })
        stages[stage] = work
        return work
    }

    /// `time` of a collective on the group `key` names, timed once.
    func collective(_ key: GroupKey, _ time: (inout [String]) -> SimTime) -> SimTime {
        if let known = collectives[key] { return known }
        let value = time(&choices)
        collectives[key] = value
        return value
    }

    /// A pipeline message (`activationBytes`) from GPU `from` to GPU `to`, alone on the fabric.
    func transfer(from: Int, to: Int) -> SimTime {
        let pair = Pair(from: from, to: to)
        if let known = transfers[pair] { return known }
        let value = simulator.network.time([Message(from: from, to: to, bytes: simulator.activationBytes)])
        transfers[pair] = value
        return value
    }
}

extension StepSimulator {
    /// Bytes of one micro-batch's activations (or their gradient) handed between pipeline stages,
    /// as the plan sends them (under sequence parallelism, the shard's share of each sequence).
    var activationBytes: Double {
        let s = scenario
        return StepProgram.messageBytes(model: s.model, layout: s.layout,
                                        options: StepOptions(batch: s.batch, sequence: s.sequence, bytesPerElement: s.precision.bytes)).value
    }

    /// Each stage's costs in the pipeline of replica `dp`, tensor shard `tp`: its chunks'
    /// passes on its tensor-parallel group's slowest member, with their all-reduces; its
    /// data-parallel buckets; its optimizer step (and ZeRO all-gather).
    func stageCosts(pipeline which: (dp: Int, tp: Int), pricing: StepPricing) -> [StageCost] {
        let s = scenario, layout = s.layout, mesh = layout.mesh
        let tokens = Double(layout.sequencesPerMicrobatch(batch: s.batch) * s.sequence / layout.cp), bytes = Double(s.precision.bytes)
        let c = Double(s.model.dModel), recompute = s.recompute == .full ? 1.0 : 0.0
        return (0..<layout.pp).map { index in
            let work = pricing.stage(index), rank = mesh.rank(dp: which.dp, tp: which.tp, pp: index)
            var cost = StageCost()
            let tpGroup = mesh.tpGroup(of: rank)
            // A gradient bucket's group and its pricing key: the dp group, or (a routed expert's
            // under expert parallelism) the ranks holding the same experts. Its members are listed
            // only when a price is first made: every pipeline asks for every bucket, and listing a
            // 784-rank group each time made the 100,352-GPU full-fidelity step 14× slower.
            func gradientGroup(_ group: StepGroup) -> (count: Int, members: () -> [Int], kind: StepPricing.GroupKey.Kind, index: Int) {
                if group == .expertData {
                    let first = which.dp % layout.ep
                    return ((layout.dp - first + layout.ep - 1) / layout.ep, { mesh.expertDataGroup(of: rank) }, .expertData, first * layout.tp + which.tp)
                }
                return (layout.dp, { mesh.dpGroup(of: rank) }, .data, which.tp)
            }
            // The tensor-parallel group meets at every layer, so it computes at its slowest
            // member's pace: each distinct (device, slowdown) of the group is priced.
            let members = s.kinds(of: tpGroup)
            func slowest(_ price: (Device) -> SimTime) -> SimTime {
                members.map { m in m.slowdown == 1 ? price(m.device) : SimTime(seconds: price(m.device).seconds * m.slowdown) }.max() ?? .zero
            }
            let layers = work.program.chunks.reduce(0) { $0 + $1.count }
            for (chunk, range) in work.program.chunks.enumerated() {
                var pass = PassCost()
                // Weights are read once per pass through a chunk: its share of what the stage holds.
                let share = Double(range.count) / Double(max(1, layers))
                let flops = work.flops[chunk], kernels = work.kernels[chunk]
                let traffic = work.held * share * bytes + tokens * c * Double(range.count) * 16 * bytes / Double(layout.tp)
                // A measured CPU: the trainer's own kernels, each at its measured rate; else the roofline.
                pass.forward = slowest { device in
                    device.calibration.map { SimTime(seconds: $0.stepSeconds(kernels.forward)) }
                        ?? device.time(flops: flops.forward, bytes: traffic, precision: s.precision, efficiency: s.efficiency)
                }
                pass.backward = slowest { device in
                    device.calibration.map { SimTime(seconds: $0.stepSeconds(kernels.backward)) }
                        ?? device.time(flops: flops.backward, bytes: (2 + recompute) * traffic, precision: s.precision, efficiency: s.efficiency)
                }
                // Tensor-parallel collectives inside the passes, as the plan places them (all-reduces;
                // under sequence parallelism all-gather/reduce-scatter pairs and the norms' small all-reduces).
                let tensor = work.tensor[chunk]
                func time(_ op: StepPricing.TensorCollective) -> SimTime {
                    let key = StepPricing.GroupKey(kind: .tensor, index: which.dp, stage: index, bytes: op.bytes,
                                                   part: op.kind == .allGather ? 4 : op.kind == .reduceScatter ? 5 : 0)
                    return pricing.collective(key) {
                        timedCollective(op.part, tpGroup, bytes: op.bytes, algorithm: s.tensorParallelAlgorithm,
                                        what: "tensor-parallel \(op.name)", into: &$0)
                    }
                }
                pass.tensorCollectives = tensor.forward + tensor.backward
                pass.tensorSyncs = work.meetings[chunk]
                pass.tensorForward = tensor.forward.reduce(.zero) { $0 + time($1) }
                pass.tensorBackward = tensor.backward.reduce(.zero) { $0 + time($1) }
                // ZeRO-3: every unit's weights gathered over the data-parallel group (a routed expert's
                // over the ranks holding it) before each pass uses them.
                func gather(_ gathered: (group: StepGroup, block: Bytes)) -> SimTime {
                    let (count, members, kind, group) = gradientGroup(gathered.group)
                    guard count > 1 else { return .zero }
                    let size = (gathered.block * count).value
                    let key = StepPricing.GroupKey(kind: kind, index: group, stage: index, bytes: size, part: 3)
                    return pricing.collective(key) {
                        timedCollective(.allGather, members(), bytes: size, algorithm: s.dataParallelAlgorithm, what: "ZeRO-3 weight all-gather", into: &$0)
                    }
                }
                pass.gatherForward = work.gathers[chunk].forward.map(gather)
                pass.gatherBackward = work.gathers[chunk].backward.map(gather)
                // Expert parallelism: the tokens' all-to-alls to and from the experts, on this rank's group.
                func exchange(_ bytes: Double) -> SimTime {
                    let key = StepPricing.GroupKey(kind: .expert, index: which.dp / layout.ep * layout.tp + which.tp, stage: index, bytes: bytes, part: 6)
                    return pricing.collective(key) { _ in collectives.allToAll(mesh.epGroup(of: rank), bytes: bytes) }
                }
                let exchanges = work.exchanges[chunk]
                pass.expertExchanges = exchanges.forward + exchanges.backward
                pass.expertForward = exchanges.forward.reduce(.zero) { $0 + exchange($1) }
                pass.expertBackward = exchanges.backward.reduce(.zero) { $0 + exchange($1) }
                // Context parallelism: the ring's K/V traffic runs beside the attention kernels; only
                // what outlasts them (their share of the pass's compute) holds the pass up.
                let ring = work.ring[chunk], cpGroup = mesh.cpGroup(of: rank)
                func ringTime(_ op: StepPricing.TensorCollective) -> SimTime {
                    let key = StepPricing.GroupKey(kind: .context, index: which.dp / layout.cp * layout.tp + which.tp, stage: index, bytes: op.bytes,
                                                   part: op.kind == .allGather ? 7 : 8)
                    return pricing.collective(key) {
                        timedCollective(op.part, cpGroup, bytes: op.bytes, algorithm: .ring, what: "ring attention \(op.name)", into: &$0)
                    }
                }
                func exposed(_ ops: [StepPricing.TensorCollective], compute: SimTime, attention: FLOPs, of total: FLOPs) -> SimTime {
                    // On a calibrated CPU the cores that compute also move the blocks: nothing hides.
                    let hidden = total > .zero && s.device.calibration == nil
                    let busy = hidden ? compute.seconds * attention.count / total.count : 0
                    return SimTime(seconds: max(0, ops.reduce(.zero) { $0 + ringTime($1) }.seconds - busy))
                }
                pass.ringCollectives = ring.forward + ring.backward
                pass.ringSyncs = work.ringMeetings[chunk]
                pass.ringForward = exposed(ring.forward, compute: pass.forward, attention: work.attention[chunk].forward, of: flops.forward)
                pass.ringBackward = exposed(ring.backward, compute: pass.backward, attention: work.attention[chunk].backward, of: flops.backward)
                cost.chunks.append(pass)
            }
            // Data parallelism: this stage's buckets, in the order the backward pass finishes them.
            let sync = work.program.sync
            cost.gradientBytes = Double(sync.heldElements) * bytes
            if layout.dp > 1 {
                // Under flow-level fidelity every tensor shard's dp group of this stage syncs at
                // the same time and they share links.
                let concurrent = s.fidelity == .flow && s.zero == 0 && s.dataParallelAlgorithm == .ring
                lazy var peers = (0..<layout.tp).map { mesh.dpGroup(of: mesh.rank(dp: 0, tp: $0, pp: index)) }
                // Under expert parallelism the routed experts' buckets are summed over the ranks holding the same experts.
                for (bucket, size) in zip(sync.buckets, work.buckets) {
                    let (count, members, kind, number) = gradientGroup(bucket.group), shared = concurrent && kind == .data
                    let key = StepPricing.GroupKey(kind: kind, index: shared ? -1 : number, stage: index, bytes: size, part: 1)
                    let time = count < 2 ? .zero : pricing.collective(key) { choices in
                        shared ? collectives.concurrentRingAllReduce(peers, bytes: size)
                            : sync.kind == .reduceScatter
                            ? timedCollective(.reduceScatter, members(), bytes: size, algorithm: s.dataParallelAlgorithm, what: "data-parallel reduce-scatter", into: &choices)
                            : timedCollective(.all, members(), bytes: size, algorithm: s.dataParallelAlgorithm, what: "data-parallel all-reduce", into: &choices)
                    }
                    cost.dataParallel.append(count < 2 ? .zero : time + bucketSynchronization(group: count, acrossNodes: spansNodes(members())))
                    cost.bucketChunks.append(sync.chunk(of: bucket))
                }
            }
            // AdamW: read and write weights, master copy, moments and gradients (memory-bound).
            var updated = 0.0
            var gathers: [(group: StepGroup, bytes: Double)] = []
            for op in StepProgram.update(plan: work.program.plan, sync: sync, dataParallelRank: which.dp, bytesPerElement: s.precision.bytes) {
                if case let .optimizer(parameters) = op { updated += Double(parameters) }
                if case let .collective(.allGather, group, bytes) = op, group == .data || group == .expertData {
                    let count = gradientGroup(group).count
                    if count > 1 { gathers.append((group, (bytes * count).value)) }
                }
            }
            cost.optimizer = slowest { device in
                device.calibration.map { SimTime(seconds: updated * ($0.perElement[.optimizer] ?? 0)) }
                    ?? device.time(flops: .zero, bytes: updated * 32, precision: s.precision, efficiency: s.efficiency)
            }
            // ZeRO: the updated parameters are all-gathered, bucket by bucket.
            for (gathered, size) in gathers {
                let (_, members, kind, number) = gradientGroup(gathered)
                let key = StepPricing.GroupKey(kind: kind, index: number, stage: index, bytes: size, part: 2)
                cost.optimizer += pricing.collective(key) {
                    timedCollective(.allGather, members(), bytes: size, algorithm: s.dataParallelAlgorithm, what: "ZeRO all-gather", into: &$0)
                }
            }
            return cost
        }
    }

    /// The bytes one pipeline's step puts on each link, for the busiest-links report.
    func ledger(pipeline gpus: [Int], costs: [StageCost]) -> LinkLedger {
        let s = scenario, layout = s.layout, mesh = layout.mesh, schedule = layout.pipeline
        var ledger = LinkLedger(fabric: network.fabric)
        for (index, cost) in costs.enumerated() {
            if layout.tp > 1 {
                for pass in cost.chunks {
                    for op in pass.tensorCollectives {
                        ledger.ring(mesh.tpGroup(of: gpus[index]), bytes: op.bytes, times: layout.microbatches, halfRing: op.kind != .allReduce)
                    }
                }
            }
            // Expert parallelism: every all-to-all sends each other member of the group 1/ep of what a member hands in.
            if layout.ep > 1 {
                let group = mesh.epGroup(of: gpus[index])
                for pass in cost.chunks {
                    for bytes in pass.expertExchanges {
                        for from in group { for to in group where to != from {
                            ledger.add(Message(from: from, to: to, bytes: bytes / Double(layout.ep)), times: layout.microbatches)
                        } }
                    }
                }
            }
            // Context parallelism: each ring collective's ring over the group, once per micro-batch.
            if layout.cp > 1 {
                for pass in cost.chunks {
                    for op in pass.ringCollectives {
                        ledger.ring(mesh.cpGroup(of: gpus[index]), bytes: op.bytes, times: layout.microbatches, halfRing: true)
                    }
                }
            }
            // ZeRO-3 also gathers the stage's weights for every forward and backward pass of every micro-batch.
            let gathers = s.zero >= 3 ? 2 * layout.microbatches : 0
            if layout.dp > 1 { ledger.ring(mesh.dpGroup(of: gpus[index]), bytes: cost.gradientBytes, times: s.zero >= 1 ? 1 + gathers : 2, halfRing: s.zero >= 1) }
        }
        // Every virtual stage hands each micro-batch's activations on and its gradients back.
        for k in 0..<(schedule.virtualStageCount - 1) {
            let from = gpus[schedule.stage(ofVirtual: k)], to = gpus[schedule.stage(ofVirtual: k + 1)]
            ledger.add(Message(from: from, to: to, bytes: activationBytes), times: layout.microbatches)
            ledger.add(Message(from: to, to: from, bytes: activationBytes), times: layout.microbatches)
        }
        return ledger
    }
}
