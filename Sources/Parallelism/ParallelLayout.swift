import Workload

/// How one training job is split: data × tensor × pipeline parallelism, micro-batches,
/// pipeline schedule (and its virtual stages), ZeRO stage and sequence parallelism. Checked against a model
/// and a global batch before any work starts.
public struct ParallelLayout: Sendable, Hashable, Codable, CustomStringConvertible {
    public var dp: Int
    public var tp: Int
    public var pp: Int
    public var microbatches: Int
    public var schedule: PipelineSchedule.Kind
    /// Model chunks per pipeline stage under the interleaved schedule (1 otherwise).
    public var virtualStages: Int
    /// ZeRO stage over the dp group: 0 nothing sharded; 1 the optimizer state; 2 and the
    /// gradients; 3 and the weights (gathered per unit for each pass).
    public var zeroStage: Int
    /// Sequence parallelism (Korthikanti et al. 2022, tp ≥ 2): the regions outside the tensor-parallel
    /// products (LayerNorms, residual additions, the stage boundary) hold 1/tp of each sequence's
    /// positions; the f and g all-reduces become all-gather / reduce-scatter pairs.
    public var sequenceParallel: Bool
    /// Expert parallelism: each group of `ep` data-parallel ranks splits a mixture of experts'
    /// experts among its members and trades tokens with all-to-alls (ep divides dp).
    public var ep: Int
    /// Context parallelism (ring attention): each group of `cp` data-parallel ranks holds 1/cp of
    /// the positions of the same sequences; K/V blocks travel around the group's ring (cp divides dp,
    /// so a layout with cp needs only dp/cp sequences' worth of batch per step where dp needs dp).
    public var cp: Int
    /// Causal load balancing under context parallelism: each rank holds a front and a back chunk
    /// of 2·cp (its causal attention then costs every rank the same), instead of one block.
    public var contextBalanced = false

    public init(dp: Int = 1, tp: Int = 1, pp: Int = 1, microbatches: Int = 1,
                schedule: PipelineSchedule.Kind = .oneFOneB, virtualStages: Int = 1, zeroStage: Int = 0,
                sequenceParallel: Bool = false, ep: Int = 1, cp: Int = 1) {
        self.dp = dp
        self.tp = tp
        self.pp = pp
        self.microbatches = microbatches
        self.schedule = schedule
        self.virtualStages = virtualStages
        self.zeroStage = zeroStage
        self.sequenceParallel = sequenceParallel
        self.ep = ep
        self.cp = cp
    }

    private enum CodingKeys: String, CodingKey { case dp, tp, pp, microbatches, schedule, virtualStages, zeroStage, sequenceParallel, ep, cp, contextBalanced }

    /// Layouts written before sequence, expert and context parallelism existed read as without them.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dp: try c.decode(Int.self, forKey: .dp), tp: try c.decode(Int.self, forKey: .tp), pp: try c.decode(Int.self, forKey: .pp),
                  microbatches: try c.decode(Int.self, forKey: .microbatches), schedule: try c.decode(PipelineSchedule.Kind.self, forKey: .schedule),
                  virtualStages: try c.decodeIfPresent(Int.self, forKey: .virtualStages) ?? 1,
                  zeroStage: try c.decodeIfPresent(Int.self, forKey: .zeroStage) ?? 0,
                  sequenceParallel: try c.decodeIfPresent(Bool.self, forKey: .sequenceParallel) ?? false,
                  ep: try c.decodeIfPresent(Int.self, forKey: .ep) ?? 1, cp: try c.decodeIfPresent(Int.self, forKey: .cp) ?? 1)
        contextBalanced = try c.decodeIfPresent(Bool.self, forKey: .contextBalanced) ?? false
    }

    /// Groups of ranks that hold different sequences (dp/cp): the batch is split over them.
    public var dataShards: Int { max(1, dp / max(1, cp)) }

    /// Sequences in one micro-batch of one rank's pipeline (whole sequences; under context
    /// parallelism the rank holds 1/cp of each one's positions).
    public func sequencesPerMicrobatch(batch: Int) -> Int { batch / dataShards / max(1, microbatches) }

    public var worldSize: Int { dp * tp * pp }
    public var mesh: DeviceMesh { DeviceMesh(dp: dp, tp: tp, pp: pp, ep: ep, cp: cp) }

    /// `dp2·tp2`, `pp4`, `pp2·v2` (interleaved, two chunks per stage), `dp4·z3` (ZeRO-3), `tp2·sp`
    /// (sequence parallel), `single process`.
    public var description: String {
        var parts = [("dp", dp), ("ep", ep), ("cp", cp), ("tp", tp), ("pp", pp)].filter { $0.1 > 1 }.map { "\($0.0)\($0.1)" }
        if sequenceParallel { parts.append("sp") }
        if cp > 1 && contextBalanced { parts.append("lb") }
        if schedule == .interleaved { parts.append("v\(virtualStages)") }
        if zeroStage > 0 && dp > 1 { parts.append("z\(zeroStage)") }
        return parts.isEmpty ? "single process" : parts.joined(separator: "·")
    }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case reason(String)
        public var description: String { switch self { case .reason(let r): return r } }
    }

    /// Rejects layouts that cannot run `model` on a global batch of `batch` sequences of `sequence`
    /// tokens (over `worldSize` ranks, if given).
    public func validate(model: ModelSpec, batch: Int, sequence: Int? = nil, worldSize actual: Int? = nil) throws {
        func fail(_ text: String) throws -> Never { throw Invalid.reason(text) }
        for (name, value) in [("--dp", dp), ("--tp", tp), ("--pp", pp), ("--microbatches", microbatches)] where value < 1 {
            try fail("\(name) must be at least 1 (got \(value))")
        }
        if let actual, actual != worldSize {
            try fail("dp × tp × pp = \(dp) × \(tp) × \(pp) = \(worldSize), but this run has \(actual) ranks; make them equal (mpirun -n \(worldSize), or change --dp/--tp/--pp)")
        }
        if model.heads % tp != 0 { try fail("\(model.name) has \(model.heads) attention heads, which --tp \(tp) does not divide") }
        if model.mlpHidden % tp != 0 { try fail("\(model.name)'s MLP width \(model.mlpHidden) is not divisible by --tp \(tp)") }
        if let moe = model.moe, moe.expertHidden % tp != 0 {
            try fail("\(model.name)'s expert width \(moe.expertHidden) is not divisible by --tp \(tp)")
        }
        if pp > model.layers { try fail("--pp \(pp) asks for more pipeline stages than \(model.name) has layers (\(model.layers))") }
        if cp < 1 { try fail("--cp must be at least 1 (got \(cp))") }
        if cp > 1 {
            if dp % cp != 0 {
                try fail("context parallelism splits the sequences of each group of --cp \(cp) data-parallel ranks among them, so --cp must divide --dp \(dp)")
            }
            if ep > 1 { try fail("context parallelism (--cp \(cp)) and expert parallelism (--ep \(ep)) together are not modelled yet; use one of them") }
            if let sequence, sequence % cp != 0 {
                try fail("--cp \(cp) gives each rank of a group an equal block of every sequence, which \(sequence) tokens do not make; use a sequence length that is a multiple of \(cp)")
            }
            if contextBalanced, let sequence, sequence % (2 * cp) != 0 {
                try fail("--cp-balance cuts every sequence into 2 × --cp \(cp) = \(2 * cp) equal chunks, which \(sequence) tokens do not make; use a sequence length that is a multiple of \(2 * cp)")
            }
        }
        if batch % dataShards != 0 {
            try fail("the global batch of \(batch) sequences is not divisible by --dp \(dp)" + (cp > 1 ? " / --cp \(cp) = \(dataShards) groups holding different sequences"
                : batch < dp ? "; with fewer sequences than ranks, split each sequence over a context-parallel group (--cp, layout.cp) so only dp/cp groups need their own" : ""))
        }
        if (batch / dataShards) % microbatches != 0 {
            let perRank = batch / dataShards
            let fits = (1...min(microbatches, max(perRank, 1))).last { perRank % $0 == 0 } ?? 1
            try fail("each data-parallel rank gets \(perRank) sequences, which \(microbatches) micro-batches do not divide; "
                     + "use \(fits) micro-batches or another divisor of \(perRank) (--microbatches; fleet's default is 2 × --pp)")
        }
        if !(0...3).contains(zeroStage) { try fail("--zero takes a ZeRO stage: 0 (none), 1 (optimizer state), 2 (and gradients) or 3 (and parameters); got \(zeroStage)") }
        if ep < 1 { try fail("--ep must be at least 1 (got \(ep))") }
        if ep > 1 {
            guard let moe = model.moe else {
                try fail("expert parallelism splits a mixture of experts' experts, and \(model.name) has none; use a model with experts (gpt-tiny-moe, mixtral-8x7b, deepseek-v3-like) or ep 1")
            }
            if dp % ep != 0 {
                try fail("expert parallelism splits each group of --ep \(ep) data-parallel ranks' experts among them, so --ep must divide --dp \(dp)")
            }
            if moe.experts % ep != 0 {
                let fits = (1...moe.experts).filter { moe.experts % $0 == 0 && dp % $0 == 0 }.map(String.init).joined(separator: ", ")
                try fail("\(model.name)'s \(moe.experts) experts do not split evenly over --ep \(ep); use one of \(fits)")
            }
        }
        if sequenceParallel && tp < 2 {
            try fail("--sequence-parallel splits each sequence over the tensor-parallel group, so it needs --tp 2 or more (got --tp \(tp))")
        }
        if sequenceParallel, let sequence, sequence % tp != 0 {
            let fits = max(tp, sequence - sequence % tp)
            try fail("--sequence-parallel gives each of the --tp \(tp) ranks an equal share of every sequence, which \(sequence) tokens do not make; use --seq \(fits) or another multiple of \(tp)")
        }
        if schedule != .interleaved && virtualStages != 1 {
            try fail("--virtual-stages \(virtualStages) needs --schedule interleaved (the \(schedule.rawValue) schedule runs one chunk per stage)")
        }
        if schedule == .interleaved {
            let chunks = pp * virtualStages
            if pp < 2 { try fail("--schedule interleaved needs a pipeline (--pp 2 or more); with one stage there is no bubble to shrink") }
            if virtualStages < 2 { try fail("--schedule interleaved needs --virtual-stages 2 or more (with 1 it is plain 1f1b)") }
            if model.layers % chunks != 0 {
                let fits = (2...max(2, model.layers)).filter { model.layers % (pp * $0) == 0 }
                try fail("interleaving cuts \(model.name)'s \(model.layers) layers into --pp × --virtual-stages = \(pp) × \(virtualStages) = \(chunks) equal chunks, which \(model.layers) layers do not make; "
                         + (fits.isEmpty ? "no virtual-stage count does at --pp \(pp): use another --pp or --schedule 1f1b" : "use --virtual-stages \(fits.map(String.init).joined(separator: " or "))"))
            }
            if microbatches % pp != 0 {
                try fail("the interleaved schedule sends micro-batches through the chunks in groups of --pp \(pp), so --microbatches \(microbatches) must be a multiple of \(pp) (e.g. \(pp * max(1, (microbatches + pp - 1) / pp)))")
            }
        }
    }

    /// Micro-batches a pipeline of `pp` stages gets unless told: 2·pp (1 without a pipeline).
    public static func defaultMicrobatches(pp: Int) -> Int { pp > 1 ? 2 * pp : 1 }

    /// Chunks per stage `schedule` gets unless told: 2 when interleaved, else 1.
    public static func defaultVirtualStages(_ schedule: PipelineSchedule.Kind) -> Int { schedule == .interleaved ? 2 : 1 }

    /// Model chunks per stage the schedule runs (virtual stages when interleaved, else 1).
    public var chunksPerStage: Int { schedule == .interleaved ? max(1, virtualStages) : 1 }

    /// Layers of each virtual stage (chunk k runs on stage k mod pp), as even as possible
    /// (earlier chunks take the remainder); one per stage unless interleaved.
    public func chunkLayers(model: ModelSpec) -> [Range<Int>] {
        let chunks = pp * chunksPerStage
        return (0..<chunks).map { s in
            let base = model.layers / chunks, extra = model.layers % chunks
            let start = s * base + min(s, extra)
            return start..<(start + base + (s < extra ? 1 : 0))
        }
    }

    /// Layers of each pipeline stage, by chunk in the order the stage holds them (one range
    /// per stage unless interleaved).
    public func stageLayers(model: ModelSpec) -> [[Range<Int>]] {
        let chunks = chunkLayers(model: model)
        return (0..<pp).map { s in stride(from: s, to: chunks.count, by: pp).map { chunks[$0] } }
    }

    /// The pipeline schedule this layout runs.
    public var pipeline: PipelineSchedule {
        PipelineSchedule(kind: schedule, stages: pp, microbatches: microbatches, virtualStages: chunksPerStage)
    }
}
