/// What checking a schedule found: it is sound, how idle it leaves the stages, and how
/// many micro-batches' activations each stage holds at once.
public struct ScheduleReport: Sendable, Codable, Hashable {
    /// Idle fraction of the step with forward = 1 and backward = 2 time units and free communication.
    public let bubbleFraction: Double
    /// The textbook value (p − 1) / (V·m + p − 1), for comparison (V = 1 unless interleaved).
    public let idealBubbleFraction: Double
    /// Per stage, the most forward passes whose backward has not run yet (chunk passes when
    /// interleaved, each holding 1/V of a stage's activations of one micro-batch).
    public let peakInFlightActivations: [Int]
    /// Step length in time units, and when each stage is busy: (stage, action, start, end).
    public let makespan: Double
    public let timeline: [Span]

    public struct Span: Sendable, Codable, Hashable {
        public let stage: Int
        public let action: String
        public let start: Double
        public let end: Double
    }
}

extension PipelineSchedule {
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case unmatched(String)
        case deadlock(String)

        public var description: String {
            switch self {
            case .unmatched(let s): return "pipeline schedule is inconsistent: \(s)"
            case .deadlock(let s): return "pipeline schedule can deadlock: \(s)"
            }
        }
    }

    /// Every forward and backward of every micro-batch runs once per stage, every send has
    /// its receive (same channel, same order), and executing the programs — receives wait
    /// for their send, sends never wait — finishes. Returns bubble and memory figures.
    public func check(forwardCost: Double = 1, backwardCost: Double = 2) throws -> ScheduleReport {
        for (s, program) in actions.enumerated() {
            for i in 0..<microbatches {
                for c in 0..<virtualStages {
                    let what = virtualStages > 1 ? "micro-batch \(i) on chunk \(c)" : "micro-batch \(i)"
                    let forward = Action.forward(microbatch: i, chunk: c), backward = Action.backward(microbatch: i, chunk: c)
                    guard program.filter({ $0 == forward }).count == 1, program.filter({ $0 == backward }).count == 1 else {
                        throw Problem.unmatched("stage \(s) must run forward and backward of \(what) exactly once")
                    }
                    guard program.firstIndex(of: forward)! < program.firstIndex(of: backward)! else {
                        throw Problem.unmatched("stage \(s) runs backward of \(what) before its forward")
                    }
                }
            }
            if let stray = program.first(where: { ($0.chunk ?? 0) >= virtualStages || ($0.microbatch ?? 0) >= microbatches }) {
                throw Problem.unmatched("stage \(s) runs \(stray), which is not in a step of \(microbatches) micro-batches over \(virtualStages) chunk(s)")
            }
        }
        // Per channel, the micro-batches sent and received, which must agree in order.
        var sent: [PipelineMessage.Channel: [Int]] = [:], received: [PipelineMessage.Channel: [Int]] = [:]
        for (s, program) in actions.enumerated() {
            for action in program {
                guard let message = action.message else { continue }
                let own = action.isSend ? message.from : message.to
                guard (0..<virtualStageCount).contains(message.from), (0..<virtualStageCount).contains(message.to), own % stages == s else {
                    throw Problem.unmatched("stage \(s) runs \(action), a message between virtual stages \(message.from) and \(message.to), which is not its own to move")
                }
                if action.isSend { sent[message.channel, default: []].append(message.microbatch) }
                else { received[message.channel, default: []].append(message.microbatch) }
            }
        }
        for channel in Set(sent.keys).union(received.keys) where sent[channel] != received[channel] {
            throw Problem.unmatched("channel \(channel) sends micro-batches \(sent[channel] ?? []) but receives \(received[channel] ?? [])")
        }
        return try simulate(forwardCost: forwardCost, backwardCost: backwardCost)
    }

    private func simulate(forwardCost: Double, backwardCost: Double) throws -> ScheduleReport {
        var next = Array(repeating: 0, count: stages)
        var clock = Array(repeating: 0.0, count: stages)
        var delivered: [PipelineMessage: Double] = [:]
        var inFlight = Array(repeating: 0, count: stages), peak = Array(repeating: 0, count: stages)
        var timeline: [ScheduleReport.Span] = []
        var progressed = true
        while progressed {
            progressed = false
            for s in 0..<stages {
                while next[s] < actions[s].count {
                    let action = actions[s][next[s]]
                    if let message = action.message {
                        if action.isSend {
                            delivered[message] = clock[s]
                        } else {
                            // A receive whose message has not been sent yet leaves `next` where it is.
                            guard let at = delivered[message] else { break }
                            clock[s] = max(clock[s], at)
                        }
                    } else if case .optimizerStep = action {
                    } else {
                        // A chunk holds 1/V of the stage's layers.
                        var cost = backwardCost
                        if case .forward = action { cost = forwardCost }
                        cost /= Double(virtualStages)
                        timeline.append(.init(stage: s, action: action.description, start: clock[s], end: clock[s] + cost))
                        clock[s] += cost
                        if case .forward = action { inFlight[s] += 1 } else { inFlight[s] -= 1 }
                        peak[s] = max(peak[s], inFlight[s])
                    }
                    next[s] += 1
                    progressed = true
                }
            }
        }
        if let stuck = (0..<stages).first(where: { next[$0] < actions[$0].count }) {
            let waiting = (0..<stages).filter { next[$0] < actions[$0].count }.map { "stage \($0) at \(actions[$0][next[$0]])" }
            throw Problem.deadlock("no stage can move: \(waiting.joined(separator: ", ")) (first: stage \(stuck))")
        }
        let makespan = clock.max() ?? 0
        let busy = Double(microbatches) * (forwardCost + backwardCost)
        let bubble = makespan > 0 ? 1 - busy / makespan : 0
        let ideal = Double(stages - 1) / Double(virtualStages * microbatches + stages - 1)
        return ScheduleReport(bubbleFraction: bubble, idealBubbleFraction: ideal, peakInFlightActivations: peak,
                              makespan: makespan, timeline: timeline)
    }
}

extension PipelineSchedule.Action {
    /// The micro-batch an action concerns, if any.
    public var microbatch: Int? {
        switch self {
        case .forward(let m, _), .backward(let m, _), .sendActivation(let m, _), .receiveActivation(let m, _),
             .sendGradient(let m, _), .receiveGradient(let m, _): return m
        case .optimizerStep: return nil
        }
    }
}
