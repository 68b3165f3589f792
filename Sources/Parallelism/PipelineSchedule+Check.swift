/// What checking a schedule found: it is sound, how idle it leaves the stages, and how
/// many micro-batches' activations each stage holds at once.
public struct ScheduleReport: Sendable, Codable, Hashable {
    /// Idle fraction of the step with forward = 1 and backward = 2 time units and free communication.
    public let bubbleFraction: Double
    /// The textbook value (p − 1) / (m + p − 1), for comparison.
    public let idealBubbleFraction: Double
    /// Per stage, the most forward passes whose backward has not run yet.
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
                guard program.filter({ $0 == .forward(microbatch: i) }).count == 1,
                      program.filter({ $0 == .backward(microbatch: i) }).count == 1 else {
                    throw Problem.unmatched("stage \(s) must run forward and backward of micro-batch \(i) exactly once")
                }
                guard program.firstIndex(of: .forward(microbatch: i))! < program.firstIndex(of: .backward(microbatch: i))! else {
                    throw Problem.unmatched("stage \(s) runs backward of micro-batch \(i) before its forward")
                }
            }
        }
        // Per channel, the micro-batches sent and received, which must agree in order.
        var sent: [PipelineMessage.Channel: [Int]] = [:], received: [PipelineMessage.Channel: [Int]] = [:]
        for (s, program) in actions.enumerated() {
            for action in program {
                guard let message = action.message(stage: s) else { continue }
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
                    if let message = action.message(stage: s) {
                        if action.isSend {
                            delivered[message] = clock[s]
                        } else {
                            // A receive whose message has not been sent yet leaves `next` where it is.
                            guard let at = delivered[message] else { break }
                            clock[s] = max(clock[s], at)
                        }
                    } else if case .optimizerStep = action {
                    } else {
                        let cost = action == .forward(microbatch: action.microbatch!) ? forwardCost : backwardCost
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
        let ideal = Double(stages - 1) / Double(microbatches + stages - 1)
        return ScheduleReport(bubbleFraction: bubble, idealBubbleFraction: ideal, peakInFlightActivations: peak,
                              makespan: makespan, timeline: timeline)
    }
}

extension PipelineSchedule.Action {
    /// The micro-batch an action concerns, if any.
    public var microbatch: Int? {
        switch self {
        case .forward(let m), .backward(let m), .sendActivation(let m, _), .receiveActivation(let m, _),
             .sendGradient(let m, _), .receiveGradient(let m, _): return m
        case .optimizerStep: return nil
        }
    }
}
