import Workload

/// How one training job is split: data × tensor × pipeline parallelism, micro-batches,
/// pipeline schedule and ZeRO stage. Checked against a model and a global batch before
/// any work starts.
public struct ParallelLayout: Sendable, Hashable, Codable, CustomStringConvertible {
    public var dp: Int
    public var tp: Int
    public var pp: Int
    public var microbatches: Int
    public var schedule: PipelineSchedule.Kind
    /// 0: replicated optimizer state; 1: optimizer state sharded over the dp group.
    public var zeroStage: Int

    public init(dp: Int = 1, tp: Int = 1, pp: Int = 1, microbatches: Int = 1,
                schedule: PipelineSchedule.Kind = .oneFOneB, zeroStage: Int = 0) {
        self.dp = dp
        self.tp = tp
        self.pp = pp
        self.microbatches = microbatches
        self.schedule = schedule
        self.zeroStage = zeroStage
    }

    public var worldSize: Int { dp * tp * pp }
    public var mesh: DeviceMesh { DeviceMesh(dp: dp, tp: tp, pp: pp) }

    /// `dp2·tp2`, `pp4`, `single process`.
    public var description: String {
        let parts = [("dp", dp), ("tp", tp), ("pp", pp)].filter { $0.1 > 1 }.map { "\($0.0)\($0.1)" }
        return parts.isEmpty ? "single process" : parts.joined(separator: "·")
    }

    public enum Invalid: Error, Equatable, CustomStringConvertible {
        case reason(String)
        public var description: String { switch self { case .reason(let r): return r } }
    }

    /// Rejects layouts that cannot run `model` on a global batch of `batch` sequences (over `worldSize` ranks, if given).
    public func validate(model: ModelSpec, batch: Int, worldSize actual: Int? = nil) throws {
        func fail(_ text: String) throws -> Never { throw Invalid.reason(text) }
        for (name, value) in [("--dp", dp), ("--tp", tp), ("--pp", pp), ("--microbatches", microbatches)] where value < 1 {
            try fail("\(name) must be at least 1 (got \(value))")
        }
        if let actual, actual != worldSize {
            try fail("dp × tp × pp = \(dp) × \(tp) × \(pp) = \(worldSize), but this run has \(actual) ranks; make them equal (mpirun -n \(worldSize), or change --dp/--tp/--pp)")
        }
        if model.heads % tp != 0 { try fail("\(model.name) has \(model.heads) attention heads, which --tp \(tp) does not divide") }
        if model.mlpHidden % tp != 0 { try fail("\(model.name)'s MLP width \(model.mlpHidden) is not divisible by --tp \(tp)") }
        if pp > model.layers { try fail("--pp \(pp) asks for more pipeline stages than \(model.name) has layers (\(model.layers))") }
        if batch % dp != 0 { try fail("the global batch of \(batch) sequences is not divisible by --dp \(dp)") }
        if (batch / dp) % microbatches != 0 {
            let perRank = batch / dp
            let fits = (1...min(microbatches, max(perRank, 1))).last { perRank % $0 == 0 } ?? 1
            try fail("each data-parallel rank gets \(perRank) sequences, which \(microbatches) micro-batches do not divide; "
                     + "use \(fits) micro-batches or another divisor of \(perRank) (--microbatches; fleet's default is 2 × --pp)")
        }
        if !(0...1).contains(zeroStage) { try fail("--zero supports stages 0 and 1 (got \(zeroStage))") }
    }

    /// Layers of each pipeline stage, as even as possible (earlier stages take the remainder).
    public func stageLayers(model: ModelSpec) -> [Range<Int>] {
        (0..<pp).map { s in
            let base = model.layers / pp, extra = model.layers % pp
            let start = s * base + min(s, extra)
            return start..<(start + base + (s < extra ? 1 : 0))
        }
    }

    /// The pipeline schedule this layout runs.
    public var pipeline: PipelineSchedule { PipelineSchedule(kind: schedule, stages: pp, microbatches: microbatches) }
}
