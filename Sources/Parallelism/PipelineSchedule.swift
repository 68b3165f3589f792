/// A pipeline schedule as data: for every stage, the ordered actions of one training step.
///
/// The same value is printed by `fleet plan`, checked before a run, executed by the
/// trainer and replayed by the simulator.
///
/// With virtual stages (interleaved 1F1B) the model is cut into `stages × virtualStages`
/// chunks; chunk k runs on stage k mod stages, so stage s holds chunks s, s + p, s + 2p, ….
/// Actions name a stage's local chunk (`chunk`), and messages travel between virtual stages.
public struct PipelineSchedule: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// All forwards, then all backwards (Huang et al. 2019).
        case gpipe
        /// One forward, one backward in steady state; at most (stages − stage) activations live (Narayanan et al. 2019).
        case oneFOneB = "1f1b"
        /// 1F1B over V model chunks per stage: the bubble shrinks V-fold for V× the pipeline
        /// messages (Narayanan et al. 2021, Megatron-LM's interleaved schedule).
        case interleaved
    }

    public enum Action: Sendable, Hashable, Codable, CustomStringConvertible {
        /// A micro-batch's pass through one of the stage's chunks (0 unless interleaved).
        case forward(microbatch: Int, chunk: Int = 0)
        case backward(microbatch: Int, chunk: Int = 0)
        /// Messages name virtual stages (= stages unless interleaved).
        case sendActivation(microbatch: Int, toStage: Int)
        case receiveActivation(microbatch: Int, fromStage: Int)
        case sendGradient(microbatch: Int, toStage: Int)
        case receiveGradient(microbatch: Int, fromStage: Int)
        case optimizerStep

        public var description: String {
            switch self {
            case let .forward(m, c): return c == 0 ? "F\(m)" : "F\(m).\(c)"
            case let .backward(m, c): return c == 0 ? "B\(m)" : "B\(m).\(c)"
            case let .sendActivation(m, s): return "sendA\(m)→\(s)"
            case let .receiveActivation(m, s): return "recvA\(m)←\(s)"
            case let .sendGradient(m, s): return "sendG\(m)→\(s)"
            case let .receiveGradient(m, s): return "recvG\(m)←\(s)"
            case .optimizerStep: return "step"
            }
        }

        public var isCompute: Bool {
            switch self {
            case .forward, .backward: return true
            default: return false
            }
        }

        /// The chunk a forward or backward runs (nil for the rest).
        public var chunk: Int? {
            switch self {
            case let .forward(_, c), let .backward(_, c): return c
            default: return nil
            }
        }
    }

    public let kind: Kind
    public let stages: Int
    public let microbatches: Int
    /// Model chunks per stage (1 unless interleaved).
    public let virtualStages: Int
    /// `actions[s]` is stage s's program for one step.
    public let actions: [[Action]]

    public init(kind: Kind, stages: Int, microbatches: Int, virtualStages: Int = 1) {
        self.kind = kind
        self.stages = stages
        self.microbatches = microbatches
        let v = kind == .interleaved ? max(1, virtualStages) : 1
        self.virtualStages = v
        actions = (0..<stages).map { Self.program(kind: kind, stage: $0, stages: stages, microbatches: microbatches, chunks: v) }
    }

    /// A hand-written schedule (for tests and experiments); `check()` tells whether it is sound.
    public init(kind: Kind, stages: Int, microbatches: Int, virtualStages: Int = 1, actions: [[Action]]) {
        self.kind = kind
        self.stages = stages
        self.microbatches = microbatches
        self.virtualStages = virtualStages
        self.actions = actions
    }

    /// Virtual stages in the whole pipeline: the chunks the model is cut into.
    public var virtualStageCount: Int { stages * virtualStages }

    /// The virtual stage that chunk `chunk` of stage `stage` is.
    public func virtualStage(stage: Int, chunk: Int) -> Int { chunk * stages + stage }

    /// The stage that runs virtual stage `virtual`.
    public func stage(ofVirtual virtual: Int) -> Int { virtual % stages }

    /// Positions in `actions[stage]` of each chunk's last backward pass: the pass that
    /// finalises that chunk's gradients, where its data-parallel buckets start.
    public func lastBackwards(stage: Int) -> Set<Int> {
        Set((0..<virtualStages).compactMap { c in
            actions[stage].lastIndex { if case .backward(_, c) = $0 { return true } else { return false } }
        })
    }

    private static func program(kind: Kind, stage s: Int, stages p: Int, microbatches m: Int, chunks v: Int) -> [Action] {
        var program: [Action] = []
        let last = p * v - 1
        func forward(_ i: Int, chunk c: Int = 0) {
            let k = c * p + s
            if k > 0 { program.append(.receiveActivation(microbatch: i, fromStage: k - 1)) }
            program.append(.forward(microbatch: i, chunk: c))
            if k < last { program.append(.sendActivation(microbatch: i, toStage: k + 1)) }
        }
        func backward(_ i: Int, chunk c: Int = 0) {
            let k = c * p + s
            if k < last { program.append(.receiveGradient(microbatch: i, fromStage: k + 1)) }
            program.append(.backward(microbatch: i, chunk: c))
            if k > 0 { program.append(.sendGradient(microbatch: i, toStage: k - 1)) }
        }
        switch kind {
        case .gpipe:
            (0..<m).forEach { forward($0) }
            (0..<m).forEach { backward($0) }
        case .oneFOneB:
            let warmup = min(p - s - 1, m)
            (0..<warmup).forEach { forward($0) }
            for i in 0..<(m - warmup) {
                forward(warmup + i)
                backward(i)
            }
            ((m - warmup)..<m).forEach { backward($0) }
        case .interleaved:
            // Megatron-LM's order: the k-th forward of a stage takes micro-batch
            // (k / pV)·p + k mod p through chunk (k mod pV) / p, so groups of p micro-batches
            // sweep the chunks in turn; backwards sweep them in reverse. Warm-up covers the
            // (V − 1)·p forwards of the other chunks plus 1F1B's 2·(p − s − 1).
            let total = m * v
            func microbatch(_ k: Int) -> Int { (k / (p * v)) * p + k % p }
            func chunk(_ k: Int, forward: Bool) -> Int {
                let c = (k % (p * v)) / p
                return forward ? c : v - 1 - c
            }
            let warmup = min((p - s - 1) * 2 + (v - 1) * p, total)
            (0..<warmup).forEach { forward(microbatch($0), chunk: chunk($0, forward: true)) }
            for k in 0..<(total - warmup) {
                forward(microbatch(k + warmup), chunk: chunk(k + warmup, forward: true))
                backward(microbatch(k), chunk: chunk(k, forward: false))
            }
            ((total - warmup)..<total).forEach { backward(microbatch($0), chunk: chunk($0, forward: false)) }
        }
        program.append(.optimizerStep)
        return program
    }
}
