import Workload

/// What a step's program depends on besides the model and the layout.
public struct StepOptions: Sendable, Hashable {
    /// Sequences in the global batch, and tokens per sequence.
    public var batch: Int
    public var sequence: Int
    /// Bytes per element of activations, their gradients and parameter gradients on the wire.
    public var bytesPerElement = 4
    /// Data-parallel bucket size.
    public var bucketBytes = 1 << 20
    /// Full activation recomputation: each backward pass first runs its layers' forward again.
    public var recompute = false
    /// A mixture of experts' busiest expert takes this many times the balanced load (1: even);
    /// the plan is that of the rank holding it, which the all-to-alls make everyone wait for.
    public var hotExpert = 1.0

    public init(batch: Int, sequence: Int, bytesPerElement: Int = 4, bucketBytes: Int = 1 << 20, recompute: Bool = false, hotExpert: Double = 1) {
        self.batch = batch
        self.sequence = sequence
        self.bytesPerElement = bytesPerElement
        self.bucketBytes = bucketBytes
        self.recompute = recompute
        self.hotExpert = hotExpert
    }
}

/// The ordered operations of one training step on one rank — one function of (model, layout,
/// schedule, options). The trainer runs it (and `--trace` records it op by op); the simulator
/// prices it; `fleet plan --json` prints it. Describes fleet's default mode (deterministic
/// mode forms the same products per sample and per head, in tree order).
public struct StepProgram: Sendable {
    /// Where a block of operations sits in the step.
    public enum Phase: Sendable, Hashable {
        /// One action of the pipeline schedule (its forward, backward, send or receive).
        case schedule(PipelineSchedule.Action)
        /// After the schedule: what is left of the gradient sum.
        case gradientSync
        /// The global gradient norm, the update, and (ZeRO-1, 2) the parameters' all-gather.
        case optimizer
        /// The step's loss summed over the data-parallel group (last stage).
        case loss
        /// A mixture of experts' routing counts (tokens per expert, dropped, balance loss of each
        /// MoE block) summed over the data-parallel group, then over the replica's ranks.
        case routing
    }

    public struct Block: Sendable, Hashable {
        public let phase: Phase
        public internal(set) var ops: [StepOp]
    }

    public let rank: Int
    public let coordinates: DeviceMesh.Coordinates
    public let stage: Int
    /// Layers of each chunk this rank runs, in chunk order (one range unless interleaved).
    public let chunks: [Range<Int>]
    public let blocks: [Block]
    /// This rank's data-parallel buckets (those in `blocks` refer to them in order).
    public let sync: GradientSync
    public let plan: ShardPlan
    public let options: StepOptions

    public var ops: [StepOp] { blocks.flatMap(\.ops) }

    public init(plan: ShardPlan, rank: Int, options: StepOptions) {
        let layout = plan.layout, model = plan.model
        self.plan = plan
        self.rank = rank
        self.options = options
        let coordinates = layout.mesh.coordinates(of: rank)
        self.coordinates = coordinates
        let stage = coordinates.pp, schedule = layout.pipeline
        let chunks = layout.stageLayers(model: model)[stage]
        self.stage = stage
        self.chunks = chunks
        let bytes = options.bytesPerElement
        let sync = GradientSync(plan: plan, stage: stage, bucketElements: max(1, options.bucketBytes / bytes), expertRank: coordinates.dp % layout.ep)
        self.sync = sync
        let isFirst = stage == 0, isLast = stage == layout.pp - 1
        let lastVirtual = schedule.virtualStageCount - 1
        let compute = StageCompute(model: model, layout: layout, options: options)
        let messageBytes = Bytes(elements: compute.messageElements, of: bytes)
        let dataParallel = layout.dp > 1
        let tiedEnds = model.tiedEmbeddings && layout.pp > 1 && (isFirst || isLast)
        let actions = schedule.actions[stage], lastBackwards = schedule.lastBackwards(stage: stage)
        var started = 0
        // A bucket of experts no other rank holds (ep = dp) is summed over nobody: it moves nothing.
        func bucketOp(_ bucket: GradientSync.Bucket) -> [StepOp] {
            GradientSync.member(of: bucket, dataParallelRank: coordinates.dp, layout: layout).size > 1
                ? [.collective(sync.kind, group: bucket.group, bytes: Bytes(elements: bucket.held.count, of: bytes))] : []
        }
        // ZeRO-3: each unit's weights are all-gathered (this rank's block of each bucket) for every
        // pass through it, one unit ahead: a pass starts its first two units' gathers, and each
        // unit then starts the next one's before it computes.
        // Each unit's gathers are worked out once, not again for every pass of every micro-batch.
        let units = [ParameterUnit.embeddings, .head] + chunks.flatMap { $0.map { ParameterUnit.layer($0) } }
        let unitGathers = plan.zero >= 3 && dataParallel ? Dictionary(uniqueKeysWithValues: units.map { unit in
            (unit, sync.buckets(for: unit).filter { GradientSync.member(of: sync.buckets[$0], dataParallelRank: coordinates.dp, layout: layout).size > 1 }.map { index -> StepOp in
                .collective(.allGather, group: sync.buckets[index].group,
                            bytes: Bytes(elements: Self.block(sync.buckets[index], dataParallelRank: coordinates.dp, layout: layout).count, of: bytes))
            })
        }) : [:]
        func gather(_ unit: ParameterUnit) -> [StepOp] { unitGathers[unit] ?? [] }
        func prefetching(_ units: [ParameterUnit]) -> (ParameterUnit) -> [StepOp] {
            { unit in
                guard !unitGathers.isEmpty, let i = units.firstIndex(of: unit) else { return [] }
                return (i == 0 ? gather(unit) : []) + (i + 1 < units.count ? gather(units[i + 1]) : [])
            }
        }
        var blocks: [Block] = []
        for (position, action) in actions.enumerated() {
            var ops: [StepOp] = []
            switch action {
            case let .forward(_, c):
                let virtual = schedule.virtualStage(stage: stage, chunk: c)
                let units = ParameterUnit.forward(layers: chunks[c], embed: virtual == 0, head: virtual == lastVirtual)
                ops = compute.forward(layers: chunks[c], embed: virtual == 0, head: virtual == lastVirtual, gather: prefetching(units))
            case let .backward(_, c):
                let virtual = schedule.virtualStage(stage: stage, chunk: c)
                if options.recompute { ops = compute.forward(layers: chunks[c], embed: false, head: false, loss: false) }
                ops += compute.backward(layers: chunks[c], embed: virtual == 0, head: virtual == lastVirtual, plan: plan,
                                        gather: prefetching(ParameterUnit.backward(layers: chunks[c], head: virtual == lastVirtual))) { entry in
                    // A chunk's last backward pass starts every bucket it has finished.
                    guard dataParallel, lastBackwards.contains(position) else { return [] }
                    var starting: [StepOp] = []
                    while started < sync.buckets.count, sync.buckets[started].firstEntry >= entry, !sync.buckets[started].afterEmbedding {
                        starting += bucketOp(sync.buckets[started])
                        started += 1
                    }
                    return starting
                }
            case .sendActivation, .sendGradient:
                ops = [.send(action.message!, bytes: messageBytes)]
            case .receiveActivation, .receiveGradient:
                ops = [.receive(action.message!, bytes: messageBytes)]
            case .optimizerStep:
                continue
            }
            blocks.append(Block(phase: .schedule(action), ops: ops))
        }
        var rest: [StepOp] = []
        if tiedEnds, let wte = plan.index(of: "wte") {
            rest.append(.collective(.allReduce, group: .embedding, bytes: Bytes(elements: plan.entries[wte].elementsPerRank, of: bytes)))
        }
        if dataParallel { rest += sync.buckets[started...].flatMap(bucketOp) }
        blocks.append(Block(phase: .gradientSync, ops: rest))
        blocks.append(Block(phase: .optimizer, ops: Self.update(plan: plan, sync: sync, dataParallelRank: coordinates.dp, bytesPerElement: bytes)))
        blocks.append(Block(phase: .loss, ops: isLast && dataParallel ? [.collective(.allReduce, group: .data, bytes: 4)] : []))
        if let moe = model.moe {
            let counts = Bytes(elements: model.expertLayers * (moe.experts + 2), of: 4)
            blocks.append(Block(phase: .routing, ops: (dataParallel ? [.collective(.allReduce, group: .data, bytes: counts)] : [])
                                + (layout.tp * layout.pp > 1 ? [.collective(.allReduce, group: .replica, bytes: counts)] : [])))
        }
        self.blocks = blocks
    }

    /// The optimizer block of a rank whose stage sums `sync` and whose data-parallel index is
    /// `dataParallelRank` (all a stage's ranks share the rest of their program; under ZeRO
    /// this is where they differ: each updates and all-gathers its own 1/dp block).
    public static func update(plan: ShardPlan, sync: GradientSync, dataParallelRank: Int, bytesPerElement bytes: Int) -> [StepOp] {
        let layout = plan.layout
        // The norm: partial sums of squares over the replica (under ZeRO over the dp group first).
        var update: [StepOp] = []
        let zero = plan.zero >= 1 && layout.dp > 1
        // Under expert parallelism the routed experts' part is a second partial sum: over the
        // replica beside the rest, then over the expert-parallel group (each holds other experts).
        let experts = layout.ep > 1
        if zero { update.append(.collective(.allReduce, group: .data, bytes: 4)) }
        if zero && experts && layout.dp > layout.ep { update.append(.collective(.allReduce, group: .expertData, bytes: 4)) }
        if layout.tp * layout.pp > 1 { update.append(.collective(.allReduce, group: .replica, bytes: experts ? 8 : 4)) }
        if experts { update.append(.collective(.allReduce, group: .expert, bytes: 4)) }
        func owned(_ bucket: GradientSync.Bucket) -> Int { block(bucket, dataParallelRank: dataParallelRank, layout: layout).count }
        update.append(.optimizer(parameters: zero ? sync.buckets.reduce(0) { $0 + owned($1) } : sync.heldElements))
        // ZeRO-1 and 2 hand the updated blocks round (not those of experts no other rank holds); under
        // ZeRO-3 they stay sharded until a pass gathers them.
        if zero && plan.zero < 3 {
            update += sync.buckets.filter { GradientSync.member(of: $0, dataParallelRank: dataParallelRank, layout: layout).size > 1 }
                .map { .collective(.allGather, group: $0.group, bytes: Bytes(elements: owned($0), of: bytes)) }
        }
        return update
    }

    /// Bytes of one pipeline message — a micro-batch's activations or their gradient at a stage
    /// boundary; under sequence parallelism the shard's positions only.
    public static func messageBytes(model: ModelSpec, layout: ParallelLayout, options: StepOptions) -> Bytes {
        Bytes(elements: StageCompute(model: model, layout: layout, options: options).messageElements, of: options.bytesPerElement)
    }

    /// The block of `bucket` (packed indices) the rank at data-parallel index `dataParallelRank`
    /// owns under ZeRO: its part of the bucket's group (the dp group, or the expert-data group).
    public static func block(_ bucket: GradientSync.Bucket, dataParallelRank: Int, layout: ParallelLayout) -> Range<Int> {
        let member = GradientSync.member(of: bucket, dataParallelRank: dataParallelRank, layout: layout)
        return BlockPartition(count: bucket.held.count, parts: member.size).range(member.rank)
    }

    /// What the whole step computes and moves, summed over its operations.
    public struct Totals: Sendable, Hashable {
        /// Matrix-product FLOPs (kernels' own products included).
        public var flops = FLOPs.zero
        /// Bytes this rank hands to collectives, per group.
        public var collectiveBytes: [StepGroup: Bytes] = [:]
        /// Bytes of the pipeline messages it sends.
        public var sentBytes = Bytes.zero
        /// Parameters it updates.
        public var updated = 0
    }

    public var totals: Totals {
        var totals = Totals()
        for op in ops {
            totals.flops += op.flops
            switch op {
            case let .collective(_, group, bytes): totals.collectiveBytes[group, default: .zero] += bytes
            case let .send(_, bytes): totals.sentBytes += bytes
            case let .optimizer(parameters): totals.updated += parameters
            default: break
            }
        }
        return totals
    }

    /// Per chunk, the operations of its first forward and first backward block (every
    /// micro-batch's are the same): what the simulator prices per micro-batch and chunk.
    public var chunkWork: [(forward: [StepOp], backward: [StepOp])] {
        var forward = [[StepOp]?](repeating: nil, count: chunks.count), backward = forward
        for block in blocks {
            guard case let .schedule(action) = block.phase else { continue }
            switch action {
            case let .forward(_, c) where forward[c] == nil: forward[c] = block.ops
            case let .backward(_, c) where backward[c] == nil: backward[c] = block.ops
            default: break
            }
        }
        return chunks.indices.map { (forward[$0] ?? [], backward[$0] ?? []) }
    }

    /// A micro-batch's forward and backward operations through every chunk of this rank.
    public var microbatchWork: (forward: [StepOp], backward: [StepOp]) {
        let work = chunkWork
        return (work.flatMap(\.forward), work.flatMap(\.backward))
    }
}
