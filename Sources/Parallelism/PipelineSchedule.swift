/// A pipeline schedule as data: for every stage, the ordered actions of one training step.
///
/// The same value is printed by `fleet plan`, checked before a run, executed by the
/// trainer and replayed by the simulator.
public struct PipelineSchedule: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// All forwards, then all backwards (Huang et al. 2019).
        case gpipe
        /// One forward, one backward in steady state; at most (stages − stage) activations live (Narayanan et al. 2019).
        case oneFOneB = "1f1b"
    }

    public enum Action: Sendable, Hashable, Codable, CustomStringConvertible {
        case forward(microbatch: Int)
        case backward(microbatch: Int)
        case sendActivation(microbatch: Int, toStage: Int)
        case receiveActivation(microbatch: Int, fromStage: Int)
        case sendGradient(microbatch: Int, toStage: Int)
        case receiveGradient(microbatch: Int, fromStage: Int)
        case optimizerStep

        public var description: String {
            switch self {
            case .forward(let m): return "F\(m)"
            case .backward(let m): return "B\(m)"
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
    }

    public let kind: Kind
    public let stages: Int
    public let microbatches: Int
    /// `actions[s]` is stage s's program for one step.
    public let actions: [[Action]]

    public init(kind: Kind, stages: Int, microbatches: Int) {
        self.kind = kind
        self.stages = stages
        self.microbatches = microbatches
        actions = (0..<stages).map { Self.program(kind: kind, stage: $0, stages: stages, microbatches: microbatches) }
    }

    /// A hand-written schedule (for tests and experiments); `check()` tells whether it is sound.
    public init(kind: Kind, stages: Int, microbatches: Int, actions: [[Action]]) {
        self.kind = kind
        self.stages = stages
        self.microbatches = microbatches
        self.actions = actions
    }

    private static func program(kind: Kind, stage s: Int, stages p: Int, microbatches m: Int) -> [Action] {
        var program: [Action] = []
        func forward(_ i: Int) {
            if s > 0 { program.append(.receiveActivation(microbatch: i, fromStage: s - 1)) }
            program.append(.forward(microbatch: i))
            if s < p - 1 { program.append(.sendActivation(microbatch: i, toStage: s + 1)) }
        }
        func backward(_ i: Int) {
            if s < p - 1 { program.append(.receiveGradient(microbatch: i, fromStage: s + 1)) }
            program.append(.backward(microbatch: i))
            if s > 0 { program.append(.sendGradient(microbatch: i, toStage: s - 1)) }
        }
        switch kind {
        case .gpipe:
            (0..<m).forEach(forward)
            (0..<m).forEach(backward)
        case .oneFOneB:
            let warmup = min(p - s - 1, m)
            (0..<warmup).forEach(forward)
            for i in 0..<(m - warmup) {
                forward(warmup + i)
                backward(i)
            }
            ((m - warmup)..<m).forEach(backward)
        }
        program.append(.optimizerStep)
        return program
    }
}
