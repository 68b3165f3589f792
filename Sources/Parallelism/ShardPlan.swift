import Workload

/// How tensor parallelism splits one parameter (Megatron-LM, Shoeybi et al. 2019).
public enum TensorSplit: Sendable, Hashable, Codable {
    /// Every rank of the tensor-parallel group holds all of it.
    case replicated
    /// Output features split: each stacked section's rows (q, k and v of a fused QKV) are
    /// divided evenly over the group, rank r taking the r-th part of every section.
    case column
    /// Input features split: every row's columns are divided evenly over the group.
    case row
}

/// For every parameter of a model under a layout: how tensor parallelism splits it, which
/// pipeline stages hold it, and how data parallelism (ZeRO) shards its optimizer state — the
/// one description the trainer's shards, checkpoints, the memory model and every byte count
/// of the simulator derive from (torchtitan's per-parameter plan, as data).
public struct ShardPlan: Sendable {
    public struct Entry: Sendable, Hashable {
        public let parameter: ModelSpec.Parameter
        public let split: TensorSplit
        /// Pipeline stages that hold it: one, or the first and the last for a tied embedding
        /// (the last uses it as the output head; their gradients are summed between them).
        public let stages: [Int]
        /// Elements one tensor-parallel rank holds (a routed expert's: on average over its expert-parallel group).
        public let elementsPerRank: Int
        /// Elements of it a rank of one tensor-parallel shard holds when it holds it at all.
        public let elementsPerShard: Int
        public var name: String { parameter.name }
    }

    public let model: ModelSpec
    public let layout: ParallelLayout
    /// ZeRO stage: 1 shards the optimizer state over the data-parallel group, 2 the gradients
    /// too, 3 the weights too (the trainer runs each; the simulator prices each from the plan).
    public let zero: Int
    /// In buffer order.
    public let entries: [Entry]
    /// Where each entry starts in the flat parameter buffer.
    public let offsets: [Int]
    /// Layers of each virtual stage (one per stage unless interleaved; chunk k on stage k mod pp).
    public let chunkLayers: [Range<Int>]

    public init(model: ModelSpec, layout: ParallelLayout, zero: Int? = nil) {
        self.model = model
        self.layout = layout
        self.zero = zero ?? layout.zeroStage
        let chunkLayers = layout.chunkLayers(model: model)
        self.chunkLayers = chunkLayers
        let last = max(0, layout.pp - 1)
        entries = model.parameters.map { p in
            let split = Self.split(of: p.role)
            let stages: [Int]
            switch p.role {
            case .tokenEmbedding: stages = model.tiedEmbeddings && last > 0 ? [0, last] : [0]
            case .positionEmbedding: stages = [0]
            case .outputHead: stages = [last]
            default:
                stages = [p.layer.map { l in (chunkLayers.firstIndex { $0.contains(l) } ?? last) % max(1, layout.pp) } ?? last]
            }
            // A routed expert lives on one rank of each expert-parallel group: per rank, 1/ep of every expert's elements on average.
            let perShard = split == .replicated ? p.count : p.count / layout.tp
            return Entry(parameter: p, split: split, stages: stages, elementsPerRank: p.expert == nil ? perShard : perShard / max(1, layout.ep),
                         elementsPerShard: perShard)
        }
        var offset = 0
        offsets = entries.map { entry in defer { offset += entry.parameter.count }; return offset }
    }

    /// Megatron's split of each kind of parameter: QKV and the first MLP matrix by output
    /// features (column-parallel), the two output projections by input features (row-parallel);
    /// norms, embeddings, the head and the row-parallel layers' biases replicated.
    public static func split(of role: ModelSpec.ParameterRole) -> TensorSplit {
        switch role {
        case .qkvWeight, .qkvBias, .mlpInputWeight, .mlpInputBias, .expertInputWeight, .expertInputBias: return .column
        case .attentionOutputWeight, .mlpOutputWeight, .expertOutputWeight: return .row
        case .tokenEmbedding, .positionEmbedding, .norm, .attentionOutputBias, .mlpOutputBias, .outputHead, .router, .expertOutputBias:
            return .replicated
        }
    }

    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// The index of parameter `name` in buffer order.
    public func index(of name: String) -> Int? { entries.firstIndex { $0.name == name } }

    /// The element ranges (row-major, within the parameter) that tensor-parallel rank `rank` holds.
    public func ranges(of entry: Entry, tensorRank rank: Int) -> [Range<Int>] {
        Self.ranges(of: entry.parameter, tensorParallel: layout.tp, rank: rank)
    }

    /// The element ranges of `p` that rank `rank` of a tensor-parallel group of `tp` holds.
    public static func ranges(of p: ModelSpec.Parameter, tensorParallel tp: Int, rank: Int) -> [Range<Int>] {
        guard tp > 1 else { return [0..<p.count] }
        switch split(of: p.role) {
        case .replicated:
            return [0..<p.count]
        case .column:
            let width = p.shape.count > 1 ? p.shape[1] : 1
            var ranges: [Range<Int>] = [], top = 0
            for rows in (p.sections.isEmpty ? [p.shape[0]] : p.sections) {
                let share = rows / tp, first = top + rank * share
                ranges.append((first * width)..<((first + share) * width))
                top += rows
            }
            return ranges
        case .row:
            let (rows, columns) = (p.shape[0], p.shape[1]), share = columns / tp
            return (0..<rows).map { r in (r * columns + rank * share)..<(r * columns + (rank + 1) * share) }
        }
    }

    /// The routed experts the member at position `expertRank` of an expert-parallel group holds
    /// (experts/ep consecutive ones; all of them without expert parallelism).
    public func heldExperts(expertRank: Int) -> Range<Int> {
        let experts = model.moe?.experts ?? 0, share = experts / max(1, layout.ep)
        return layout.ep > 1 ? (expertRank * share)..<((expertRank + 1) * share) : 0..<experts
    }

    /// Elements of `entry` a rank at position `expertRank` of its expert-parallel group holds when
    /// its stage holds the entry: its tensor-parallel share, none of another member's expert.
    public func heldElements(of entry: Entry, expertRank: Int) -> Int {
        guard let expert = entry.parameter.expert, layout.ep > 1 else { return entry.elementsPerShard }
        return heldExperts(expertRank: expertRank).contains(expert) ? entry.elementsPerShard : 0
    }

    /// Elements one rank of `stage` holds: its share of split parameters and all of the replicated ones.
    public func heldElements(stage: Int) -> Int {
        entries.reduce(0) { $0 + ($1.stages.contains(stage) ? $1.elementsPerRank : 0) }
    }

    /// Of those, a mixture of experts' routed experts' (ZeRO shards them over the dp/ep ranks that hold the same experts).
    public func heldExpertElements(stage: Int) -> Int {
        entries.reduce(0) { $0 + ($1.stages.contains(stage) && $1.parameter.expert != nil ? $1.elementsPerRank : 0) }
    }

    /// Bytes of gradient one rank of `stage` sums over its data-parallel group per step (or
    /// reduce-scatters, under ZeRO): every element it holds, at `bytesPerElement`.
    public func dataParallelGradientBytes(stage: Int, bytesPerElement: Int) -> Double {
        Double(heldElements(stage: stage) * bytesPerElement)
    }

    /// Elements whose optimizer state and update one rank of `stage` owns: all it holds, or its
    /// 1/dp block under ZeRO ≥ 1.
    public func optimizerElements(stage: Int) -> Double {
        Double(heldElements(stage: stage)) / Double(zero >= 1 ? layout.dp : 1)
    }

    /// Parameters the ranks of `stage` own together, each counted once: the tensor-parallel
    /// group's whole share, and the tied embedding on the first stage only.
    public func ownedParameters(stage: Int) -> Int {
        entries.reduce(0) { $0 + ($1.stages.first == stage ? $1.parameter.count : 0) }
    }

    /// The model's parameters, counted once (a tied embedding's second copy is not a parameter).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.parameter.count } }
}
