import Collectives
import FaultInjection
import Parallelism
import Tensor
import Workload

/// Data- and pipeline-parallel training across worker processes.
///
/// Every rank holds the full flat parameter buffer (so offsets, checkpoints and the
/// optimizer state look the same everywhere) but computes and updates only what its
/// pipeline stage owns. Each step: the stage runs its schedule's actions over its
/// micro-batches; the tied embedding's gradient is summed between the first and last
/// stage; gradients are summed over the dp group in buckets; the global gradient norm is
/// summed over the pipeline; then AdamW updates the owned parameters.
public final class DistributedTrainer {
    public let configuration: TrainingConfiguration
    /// Test hooks and the reduction order (see `ExecutionContext`).
    public let context: ExecutionContext
    public let layout: ParallelLayout
    public let model: GPT
    public let data: DataLoader
    public let mesh: DeviceMesh
    public let coordinates: DeviceMesh.Coordinates
    public let transport: Transport
    let groups: Groups
    let stage: Stage
    var optimizer: AdamW
    let firstMoment: FloatBuffer
    let secondMoment: FloatBuffer
    var microActivations: [Activations] = []
    /// This rank's step, from the plan the simulator prices (`fleet plan` prints it).
    public private(set) var program: StepProgram
    /// The plan's data-parallel buckets (dp > 1; in deterministic mode only under ZeRO, for its blocks): all-reduced, or
    /// reduce-scattered under ZeRO.
    var buckets: GradientBuckets?
    /// Deterministic mode's per-micro-batch gradients, joined in tree order.
    var orderedGradients: OrderedGradients?
    /// Deterministic mode under expert parallelism: per MoE block, its held experts' gradients
    /// by node (each member's micro-batch), joined in tree order.
    var expertGradients: [Int: OrderedGradients] = [:]
    /// Records the first `traceSteps` steps for a Chrome/Perfetto trace when set (see
    /// `collectTrace`): each phase as a span and, inside it, every op the rank ran.
    public var tracer: Tracer?
    public var traceSteps = 10
    var tracedSteps = 0
    /// The tracer while this step is being traced.
    var recording: Tracer? { tracedSteps < traceSteps ? tracer : nil }
    /// This rank's block of the optimizer state under ZeRO.
    var shardedState: ShardedOptimizerState?
    /// ZeRO-3: gathers each unit's weights for the passes that use them.
    var shardedWeights: ShardedWeights?
    /// Whether the pages of what this rank does not hold have been given back (before the first step).
    var holdingApplied = false
    /// Parameters, gradients and optimizer state held at the end of the last step.
    public internal(set) var lastStateBytes = StateBytes.zero
    /// The most resident state seen in the step under way (see `StateBytes.peakResident`).
    var stepPeakResident = 0
    /// Checkpoint saves of `run`, when set.
    public var checkpointing: CheckpointPolicy?
    /// The save being written in the background, and its policy.
    var pendingCheckpoint: (PendingCheckpoint, CheckpointPolicy)?
    /// The in-memory copy asynchronous saves write from (kept between saves).
    var snapshot: FloatBuffer?
    /// Directory and step of the newest checkpoint this run saved or resumed from.
    var lastCheckpoint: (directory: String, step: Int)?
    /// Process, numeric and storage faults to act out (fault-injection runs).
    public var injector: FaultInjector?
    /// Compare the data-parallel replicas' parameters every this many steps (0: never).
    public var replicaCheckEvery = 0
    /// Stop after this step (of `configuration.steps`), as an interrupted run would.
    public var stopAfter: Int?
    /// Asked at every step boundary (a scheduler's SIGTERM, Ctrl-C): when any rank says yes, all
    /// ranks save a checkpoint of that step, skip the end-of-run work and return.
    public var preemptionRequested: (() -> Bool)?
    /// The step a preempted run stopped after (its checkpoint's step).
    public internal(set) var preemptedAfter: Int?
    /// The first step `run` trains (after `restore`, the checkpoint's step).
    public internal(set) var startStep = 0
    /// Bytes per all-reduce bucket of the data-parallel gradient average (set before the first step).
    public var bucketBytes = 1 << 20 {
        didSet {
            precondition(!holdingApplied || zero < 3, "bucket sizes are set before the first step (ZeRO-3 shards the weights by bucket)")
            program = Self.program(configuration: configuration, layout: layout, rank: transport.rank, bucketBytes: bucketBytes)
            prepareGradientSum()
        }
    }
    public internal(set) var gemmFLOPs: Double = 0
    /// The data-parallel buckets' all-reduce: `.ring` or `.hierarchical` (set before the first step).
    public var dataParallelAlgorithm = AllReduceAlgorithm.ring {
        didSet { buckets?.algorithm = dataParallelAlgorithm }
    }

    /// Communicators of this rank, created in the same order on every rank.
    struct Groups {
        let world: Communicator
        let dp: Communicator
        let pp: Communicator
        /// First and last stage of this pipeline (for the tied embedding), when they differ.
        let embedding: Communicator?
        /// Every rank of this data-parallel replica (all stages and shards).
        let replica: Communicator
        /// Expert parallelism: the ranks that split the experts and trade tokens, and those
        /// holding the same experts as this rank (their gradients are summed among them).
        let expert: Communicator?
        let expertData: Communicator?
    }

    /// Which layers this rank runs and which parameter ranges it owns.
    struct Stage {
        let index: Int
        /// The model chunks it runs, in the schedule's chunk order (one unless interleaved).
        let chunks: [Chunk]
        var isFirst: Bool { index == 0 }
        let isLast: Bool
        /// Contiguous ranges of the flat buffer this stage updates.
        let owned: [Range<Int>]
        /// The part of `owned` that counts toward the global gradient norm (the tied embedding counts once).
        let counted: [Range<Int>]
    }

    /// One virtual stage: its layers, whether it embeds the tokens (the first) or holds the head
    /// and the loss (the last), and the flat-buffer spans whose gradients its backward forms.
    struct Chunk {
        let virtual: Int
        let layers: Range<Int>
        let embed: Bool
        let head: Bool
        let spans: [Range<Int>]
    }

    public init(configuration: TrainingConfiguration, layout: ParallelLayout, transport: Transport, corpus: Corpus,
                context: ExecutionContext = ExecutionContext()) throws {
        try configuration.validate()
        try layout.validate(model: configuration.model, batch: configuration.batch, sequence: configuration.sequence,
                            worldSize: transport.worldSize)
        try Self.checkRunnable(layout, model: configuration.model)
        if configuration.deterministic {
            try DeterministicMode.check(layout, model: configuration.model, batch: configuration.batch, sequence: configuration.sequence)
        }
        self.configuration = configuration
        self.layout = layout
        self.transport = transport
        self.context = context
        BLAS.setThreads(1)
        let mesh = layout.mesh, coordinates = mesh.coordinates(of: transport.rank)
        self.mesh = mesh
        self.coordinates = coordinates
        let world = Communicator(world: transport)
        let rank = transport.rank
        func group(_ all: [[Int]], _ mine: [Int], _ ids: Range<Int32>) throws -> Communicator {
            try world.subgroup(mine, id: try GroupIDs.id(in: ids, index: all.firstIndex(of: mine)!, groups: all.count))
        }
        let tensor = try group(mesh.allTPGroups, mesh.tpGroup(of: rank), GroupIDs.tensor)
        model = GPT(spec: configuration.model, seed: configuration.seed,
                    shard: TensorShard(size: layout.tp, index: coordinates.tp, group: layout.tp > 1 ? tensor : nil,
                                       sequenceParallel: layout.sequenceParallel))
        model.deterministic = configuration.deterministic
        model.reductionOrder = context.reductionOrder
        data = try DataLoader(corpus: corpus, sequence: configuration.sequence, seed: configuration.seed)
        optimizer = AdamW(weightDecay: configuration.weightDecay)
        // Under ZeRO each rank keeps only its block of the moments (ShardedOptimizerState); else
        // the moments are page-backed like the model's buffers, so only the stage's pages fill.
        let sharded = layout.zeroStage >= 1 && layout.dp > 1
        firstMoment = FloatBuffer(pageBackedCount: sharded ? 0 : model.layout.count)
        secondMoment = FloatBuffer(pageBackedCount: sharded ? 0 : model.layout.count)

        let dp = try group(mesh.allDPGroups, mesh.dpGroup(of: rank), GroupIDs.data)
        let pp = try group(mesh.allPPGroups, mesh.ppGroup(of: rank), GroupIDs.pipeline)
        var embedding: Communicator?
        let pipeline = mesh.ppGroup(of: rank)
        if layout.pp > 1 && (coordinates.pp == 0 || coordinates.pp == layout.pp - 1) {
            let ends = [pipeline.first!, pipeline.last!]
            embedding = try group(mesh.allPPGroups.map { [$0.first!, $0.last!] }, ends, GroupIDs.embedding)
        }
        // One model replica: every pipeline stage and tensor shard with this data-parallel index.
        let replicas = (0..<layout.dp).map { d in (0..<mesh.worldSize).filter { r in mesh.coordinates(of: r).dp == d } }
        let replica = try group(replicas, replicas[coordinates.dp], GroupIDs.replica)
        var expert: Communicator?, expertData: Communicator?
        if layout.ep > 1 {
            expert = try group(mesh.allEPGroups, mesh.epGroup(of: rank), GroupIDs.expert)
            expertData = try group(mesh.allExpertDataGroups, mesh.expertDataGroup(of: rank), GroupIDs.expertData)
            model.expertShard = ExpertShard(size: layout.ep, index: coordinates.dp % layout.ep, experts: configuration.model.moe!.experts, group: expert)
        }
        if layout.cp > 1 {
            // Context parallelism is carved from dp (as expert parallelism is, which it excludes): its ids reuse the expert range.
            let ring = try group(mesh.allCPGroups, mesh.cpGroup(of: rank), GroupIDs.context)
            ring.role = StepGroup.context.rawValue
            model.context = ContextShard(size: layout.cp, index: coordinates.dp % layout.cp, group: ring, sequence: configuration.sequence,
                                         balanced: layout.contextBalanced)
        }
        groups = Groups(world: world, dp: dp, pp: pp, embedding: embedding, replica: replica, expert: expert, expertData: expertData)
        // How the plan and an OpLog name each group's collectives.
        (tensor.role, dp.role, pp.role, replica.role) = ("tensor", "data", "pipeline", "replica")
        embedding?.role = "embedding"
        expert?.role = StepGroup.expert.rawValue
        expertData?.role = StepGroup.expertData.rawValue

        stage = Self.stage(coordinates.pp, layout: layout, parameters: model.layout)
        program = Self.program(configuration: configuration, layout: layout, rank: rank, bucketBytes: bucketBytes)
        prepareGradientSum()
        if configuration.deterministic && layout.ep > 1 {
            model.expertGradientNodes = { [unowned self] layer, node, packed in
                let range = expertRange(layer: layer)
                let joined = expertGradients[layer] ?? OrderedGradients(tree: batchTree, ranges: [range], headCount: 0, chunkSpans: [[range]])
                expertGradients[layer] = joined
                joined.add(node: node, packed: packed)
            }
        }
    }

    /// Refuses layouts the plan and the simulator describe but this trainer does not run, saying what to use.
    public static func checkRunnable(_ layout: ParallelLayout, model: ModelSpec) throws {
        try GPT.checkExperts(layout, model: model)
        if layout.cp > 1 && layout.sequenceParallel {
            throw ParallelLayout.Invalid.reason("context parallelism (--cp \(layout.cp)) and sequence parallelism both split every sequence's positions, and fleet's trainer runs one of them at a time; "
                + "drop --sequence-parallel or use --cp 1")
        }
        if layout.cp > 1 && model.moe != nil {
            throw ParallelLayout.Invalid.reason("context parallelism (--cp \(layout.cp)) with \(model.name)'s experts is not supported by fleet's trainer (each expert's tokens would come from split sequences); "
                + "train \(model.name) with --dp, --ep, --tp or --pp, or use a dense model with --cp")
        }
    }

    static func program(configuration c: TrainingConfiguration, layout: ParallelLayout, rank: Int, bucketBytes: Int) -> StepProgram {
        StepProgram(plan: ShardPlan(model: c.model, layout: layout), rank: rank,
                    options: StepOptions(batch: c.batch, sequence: c.sequence, bucketBytes: bucketBytes))
    }

    /// What executes the program's gradient sum: its buckets and, under ZeRO, the optimizer
    /// state of the blocks their reduce-scatters leave here (and ZeRO-3's weight gathers).
    /// Deterministic mode sums gradients in tree order instead, but under ZeRO still shards by these buckets.
    func prepareGradientSum() {
        buckets = layout.dp > 1 && (!configuration.deterministic || zero >= 1)
            ? GradientBuckets(program: program, groups: { [groups] in $0 == .expertData ? groups.expertData! : groups.dp }, gradients: model.gradients.pointer) : nil
        buckets?.algorithm = dataParallelAlgorithm
        buckets?.releasing = zero >= 2 && !configuration.deterministic ? model.gradients : nil
        shardedState = zero >= 1 ? ShardedOptimizerState(blocks: buckets!.blocks) : nil
        shardedWeights = zero >= 3
            ? ShardedWeights(buckets: buckets!, sync: program.sync, parameters: model.parameters,
                             units: stage.chunks.flatMap { ParameterUnit.forward(layers: $0.layers, embed: $0.embed, head: $0.head) })
            : nil
        model.weights = shardedWeights
    }

    /// The layers and parameter ranges of pipeline stage `index`.
    static func stage(_ index: Int, layout: ParallelLayout, parameters: ParameterLayout) -> Stage {
        let schedule = layout.pipeline, lastVirtual = schedule.virtualStageCount - 1
        let entries = parameters.entries
        func span(_ names: (String) -> Bool) -> Range<Int>? {
            let chosen = entries.filter { names($0.name) }
            guard let first = chosen.first, let last = chosen.last else { return nil }
            return first.offset..<(last.offset + last.count)
        }
        let wte = parameters.entry("wte")
        let tied = wte.offset..<(wte.offset + wte.count)
        // Layout order is wte, wpe, h0 … h(L−1), lnf: a chunk's own blocks are contiguous, the
        // first virtual stage's extend down to wte, the last one's up to lnf; the last one
        // also forms (and its stage updates) the gradient of its copy of the tied embedding.
        let chunks = layout.stageLayers(model: parameters.spec)[index].enumerated().map { c, layers -> Chunk in
            let virtual = schedule.virtualStage(stage: index, chunk: c)
            let embed = virtual == 0, head = virtual == lastVirtual
            let blocks = span { name in
                guard name.hasPrefix("h"), let l = Int(name.dropFirst().prefix { $0.isNumber }) else { return false }
                return layers.contains(l)
            }!
            var own = embed ? 0..<blocks.upperBound : blocks
            if head { own = own.lowerBound..<span { $0.hasPrefix("lnf") }!.upperBound }
            return Chunk(virtual: virtual, layers: layers, embed: embed, head: head, spans: (head && !embed ? [tied] : []) + [own])
        }
        let counted = chunks.map { $0.spans.last! }.sorted { $0.lowerBound < $1.lowerBound }
        let isLast = index == layout.pp - 1
        let owned = (isLast && index != 0 ? [tied] : []) + counted
        return Stage(index: index, chunks: chunks, isLast: isLast, owned: owned, counted: counted)
    }

    /// Parameter ranges rank (`stage`, tensor shard `shard`, position `expertRank` in its
    /// expert-parallel group; this rank's by default) computes, in flat-buffer order: with
    /// `counted`, each parameter of the model appears on exactly one rank of a replica
    /// (replicated ones on shard 0, the tied embedding on the first stage) — under expert
    /// parallelism, of the replica and its expert-parallel group for a routed expert; without,
    /// every range the rank updates. Another member's routed experts are never among them.
    func ranges(stage: Stage, shard: Int, counted: Bool, expertRank: Int? = nil) -> [Range<Int>] {
        let spans = counted ? stage.counted : stage.owned
        let experts = layout.ep > 1 ? program.plan.heldExperts(expertRank: expertRank ?? coordinates.dp % layout.ep) : nil
        var result: [Range<Int>] = []
        for entry in model.layout.entries where spans.contains(where: { $0.contains(entry.offset) }) {
            if let experts, let expert = entry.parameter.expert, !experts.contains(expert) { continue }
            if TensorShard.isSplit(entry, size: layout.tp) {
                result += TensorShard.ownedRanges(of: entry, size: layout.tp, index: shard)
            } else if !counted || shard == 0 {
                result.append(entry.offset..<(entry.offset + entry.count))
            }
        }
        return result
    }

    /// The rank that prints: the last stage of the first data-parallel replica.
    public var isReporter: Bool { coordinates.dp == 0 && coordinates.tp == 0 && stage.isLast }

    var samplesPerReplica: Int { configuration.batch / layout.dp }
    var samplesPerMicrobatch: Int { samplesPerReplica / layout.microbatches }

    /// Global sample indices of micro-batch `i` of this replica (or of data-parallel index `replica`):
    /// its node of the batch tree. Under context parallelism the activations hold the group's (`dataSamples`).
    func samples(microbatch i: Int, replica: Int? = nil) -> Range<Int> {
        let start = (replica ?? coordinates.dp) * samplesPerReplica + i * samplesPerMicrobatch
        return start..<(start + samplesPerMicrobatch)
    }

    /// The transport tag of a send or receive of this stage: its message's identity, so no two
    /// messages of a step can pair up wrongly.
    func tag(_ action: PipelineSchedule.Action) -> Int32 {
        Int32(action.message!.tag(stages: layout.pipeline.virtualStageCount))
    }
}
