import Parallelism

/// One pipeline's stages executing their schedule programs as events: a stage runs its
/// actions in order on one compute stream; sends cost nothing on the stream and arrive a
/// network transfer later; a receive blocks the stage until its message has arrived; the
/// data-parallel buckets of the last backward pass run on a separate communication stream.
struct PipelineRun {
    let programs: [[PipelineSchedule.Action]]
    let costs: [StepSimulator.StageCost]
    let network: NetworkModel
    let gpus: [Int]
    let messageBytes: Double

    private(set) var finish: [SimTime]
    private(set) var breakdown: [StepReport.Breakdown]
    private(set) var spans: [StepReport.Span] = []
    private(set) var events = 0

    private var queue = EventQueue()
    private var position: [Int]
    private var arrivals: [Int: SimTime] = [:]
    private var waitingFor: [Int?]
    private var waitingSince: [SimTime]
    private var dataParallelEnd: [SimTime]
    private let lastBackward: [Int]

    private enum Kind: Int { case wake = 0, arrival = 1 }

    init(programs: [[PipelineSchedule.Action]], costs: [StepSimulator.StageCost], network: NetworkModel, gpus: [Int], messageBytes: Double) {
        self.programs = programs
        self.costs = costs
        self.network = network
        self.gpus = gpus
        self.messageBytes = messageBytes
        let stages = programs.count
        finish = Array(repeating: .zero, count: stages)
        breakdown = Array(repeating: StepReport.Breakdown(), count: stages)
        position = Array(repeating: 0, count: stages)
        waitingFor = Array(repeating: nil, count: stages)
        waitingSince = Array(repeating: .zero, count: stages)
        dataParallelEnd = Array(repeating: .zero, count: stages)
        lastBackward = programs.map { program in
            program.lastIndex { if case .backward = $0 { return true } else { return false } } ?? -1
        }
    }

    /// A message's identity: (gradient?, micro-batch, sending stage, receiving stage).
    private func key(gradient: Bool, microbatch: Int, from: Int, to: Int) -> Int {
        ((microbatch * programs.count + from) * programs.count + to) * 2 + (gradient ? 1 : 0)
    }

    mutating func run() {
        for stage in programs.indices { queue.schedule(at: .zero, kind: Kind.wake.rawValue, subject: stage) }
        while let event = queue.next() {
            events += 1
            if event.kind == Kind.wake.rawValue {
                advance(event.subject)
            } else {
                arrivals[event.subject] = queue.now
                if let stage = waitingFor.firstIndex(where: { $0 == event.subject }) {
                    breakdown[stage].pipelineWait += queue.now - waitingSince[stage]
                    spans.append(StepReport.Span(stage: stage, name: "wait", lane: "pipeline", start: waitingSince[stage], end: queue.now))
                    waitingFor[stage] = nil
                    advance(stage)
                }
            }
        }
    }

    private mutating func busy(_ stage: Int, _ name: String, lane: String = "compute", for duration: SimTime) {
        let now = queue.now
        if duration > .zero { spans.append(StepReport.Span(stage: stage, name: name, lane: lane, start: now, end: now + duration)) }
        queue.schedule(at: now + duration, kind: Kind.wake.rawValue, subject: stage)
    }

    private mutating func advance(_ stage: Int) {
        let program = programs[stage], cost = costs[stage], now = queue.now
        while position[stage] < program.count {
            let index = position[stage], action = program[index]
            switch action {
            case .forward(let i):
                position[stage] += 1
                breakdown[stage].compute += cost.forward
                breakdown[stage].tensorParallel += cost.tensorForward
                return busy(stage, "forward \(i)", for: cost.forward + cost.tensorForward)
            case .backward(let i):
                position[stage] += 1
                breakdown[stage].compute += cost.backward
                breakdown[stage].tensorParallel += cost.tensorBackward
                if index == lastBackward[stage] { startBuckets(stage, backwardStart: now, backward: cost.backward + cost.tensorBackward) }
                return busy(stage, "backward \(i)", for: cost.backward + cost.tensorBackward)
            case let .sendActivation(i, to), let .sendGradient(i, to):
                position[stage] += 1
                let gradient: Bool
                if case .sendGradient = action { gradient = true } else { gradient = false }
                let transfer = network.time([Message(from: gpus[stage], to: gpus[to], bytes: messageBytes)])
                queue.schedule(at: now + transfer, kind: Kind.arrival.rawValue, subject: key(gradient: gradient, microbatch: i, from: stage, to: to))
            case let .receiveActivation(i, from), let .receiveGradient(i, from):
                let gradient: Bool
                if case .receiveGradient = action { gradient = true } else { gradient = false }
                let wanted = key(gradient: gradient, microbatch: i, from: from, to: stage)
                guard arrivals[wanted] != nil else {
                    waitingFor[stage] = wanted
                    waitingSince[stage] = now
                    return
                }
                position[stage] += 1
            case .optimizerStep:
                position[stage] += 1
                let exposed = max(.zero, dataParallelEnd[stage] - now)
                breakdown[stage].dataParallelExposed += exposed
                breakdown[stage].optimizer += cost.optimizer
                if exposed > .zero { spans.append(StepReport.Span(stage: stage, name: "data-parallel sync", lane: "data-parallel", start: now, end: now + exposed)) }
                // The optimizer runs once the gradients are complete.
                let start = now + exposed
                spans.append(StepReport.Span(stage: stage, name: "optimizer", lane: "compute", start: start, end: start + cost.optimizer))
                finish[stage] = start + cost.optimizer
                return
            }
        }
        finish[stage] = max(finish[stage], now)
    }

    /// Buckets become ready as the last backward pass finishes their layers (evenly over its
    /// duration, last layers first) and run one after another on the communication stream.
    private mutating func startBuckets(_ stage: Int, backwardStart: SimTime, backward: SimTime) {
        let buckets = costs[stage].dataParallel
        var free = backwardStart
        for (k, time) in buckets.enumerated() {
            let ready = backwardStart + SimTime(nanoseconds: backward.nanoseconds * Int64(k + 1) / Int64(buckets.count))
            let start = max(free, ready)
            spans.append(StepReport.Span(stage: stage, name: "bucket \(k)", lane: "data-parallel", start: start, end: start + time))
            free = start + time
        }
        dataParallelEnd[stage] = free
    }
}
