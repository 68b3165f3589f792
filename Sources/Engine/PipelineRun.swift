import Parallelism

/// One pipeline's stages executing their schedule programs as events: a stage runs its
/// actions in order on one compute stream; sends cost nothing on the stream and arrive a
/// network transfer later; a receive blocks the stage until its message has arrived; the
/// data-parallel buckets of the last backward pass run on a separate communication stream.
/// With `sharing`, ranks that share a node's cores run their kernels under processor
/// sharing: while more ranks compute than there are cores, each progresses at cores/busy.
struct PipelineRun {
    let schedule: PipelineSchedule
    let programs: [[PipelineSchedule.Action]]
    let costs: [StepSimulator.StageCost]
    /// A message's time from stage to stage (`from · stages + to`), for each pair that talks.
    let transfers: [Int: SimTime]
    let sharing: Sharing?
    /// Whether to keep the timeline (only the reported pipeline's is shown).
    let recordsSpans: Bool

    /// The cores a rank may run on (its node's, or 1 when pinned), and for each simulated stage
    /// s the ranks of every stage s' that share them (`peers[s][s']`; the simulated stage
    /// stands for its data/tensor peers).
    struct Sharing {
        let cores: Double
        let peers: [[Double]]
        /// Whether waiting ranks keep competing for the cores, and the measured waits.
        let calibration: KernelCalibration
        /// Per simulated stage, whether its tensor-parallel group and its context-parallel group
        /// span nodes; per pair of stages, whether a message between them crosses nodes (their
        /// meetings wait as measured between nodes).
        var tensorAcrossNodes: [Bool] = []
        var contextAcrossNodes: [Bool] = []
        var pipelineAcrossNodes: [[Bool]] = []
    }

    private(set) var finish: [SimTime]
    private(set) var breakdown: [StepReport.Breakdown]
    private(set) var spans: [StepReport.Span] = []
    private(set) var events = 0

    private var queue = EventQueue<Happening>()
    private var position: [Int]
    private var arrivals: [Int: SimTime] = [:]
    private var waitingFor: [Int?]
    private var waitingSince: [SimTime]
    private var dataParallelEnd: [SimTime]
    /// Per stage, the positions of each chunk's last backward pass (which starts its buckets).
    private let lastBackwards: [Set<Int>]

    /// A stage's kernels in progress: full-speed seconds left, then a fixed tail (its
    /// tensor-parallel all-reduces) before the stage moves on.
    /// What a stage computes: a micro-batch's forward or backward, or the optimizer step.
    private enum Work: Equatable {
        case pass(PipelineSchedule.Action), optimizer

        /// The plan's name for it (`forward 3.1`), as traces and `fleet plan` give it.
        var name: String {
            switch self {
            case let .pass(action): return StepProgram.Phase.schedule(action).description
            case .optimizer: return "optimizer"
            }
        }
    }

    private struct Phase {
        var work: Work, start: SimTime, remaining: Double, tail: SimTime, meetings: Int, version: Int
        /// Expert parallelism's all-to-alls inside the pass.
        var exchanges = SimTime.zero
        /// Context parallelism's ring traffic the pass's attention did not hide, and its meetings.
        var ring = SimTime.zero
        var ringMeetings = 0
        /// ZeRO-3's weight gathers the pass waits for (not hidden behind its compute).
        var gathers = SimTime.zero
    }
    private var computing: [Phase?]
    private var versions: [Int]
    private var settled = SimTime.zero

    /// A stage looks at its program again; a pipeline message (by tag) arrives; a stage's
    /// phase planned under `version` of its rates finishes (stale versions are ignored).
    private enum Happening { case wake(stage: Int), arrival(tag: Int), computed(stage: Int, version: Int) }

    /// `transfer(from, to)` prices a message between two stages' GPUs.
    init(schedule: PipelineSchedule, costs: [StepSimulator.StageCost], transfer: (Int, Int) -> SimTime,
         sharing: Sharing? = nil, recordsSpans: Bool = true) {
        self.schedule = schedule
        let programs = schedule.actions
        self.programs = programs
        self.costs = costs
        let stages = programs.count
        var transfers: [Int: SimTime] = [:]
        for k in 0..<max(0, schedule.virtualStageCount - 1) {
            let a = schedule.stage(ofVirtual: k), b = schedule.stage(ofVirtual: k + 1)
            transfers[a * stages + b] = transfer(a, b)
            transfers[b * stages + a] = transfer(b, a)
        }
        self.transfers = transfers
        self.sharing = sharing
        self.recordsSpans = recordsSpans
        computing = Array(repeating: nil, count: stages)
        versions = Array(repeating: 0, count: stages)
        finish = Array(repeating: .zero, count: stages)
        breakdown = Array(repeating: StepReport.Breakdown(), count: stages)
        position = Array(repeating: 0, count: stages)
        waitingFor = Array(repeating: nil, count: stages)
        waitingSince = Array(repeating: .zero, count: stages)
        dataParallelEnd = Array(repeating: .zero, count: stages)
        lastBackwards = programs.indices.map(schedule.lastBackwards(stage:))
    }


    mutating func run() {
        for stage in programs.indices { queue.schedule(.wake(stage: stage), at: .zero) }
        while let event = queue.next() {
            events += 1
            switch event.happening {
            case let .wake(stage):
                advance(stage)
            case let .computed(stage, version):
                computed(stage: stage, version: version)
            case let .arrival(tag):
                arrivals[tag] = queue.now
                if let stage = waitingFor.firstIndex(where: { $0 == tag }) {
                    breakdown[stage].pipelineWait += queue.now - waitingSince[stage]
                    if recordsSpans { spans.append(StepReport.Span(stage: stage, name: "wait", lane: "pipeline", start: waitingSince[stage], end: queue.now)) }
                    waitingFor[stage] = nil
                    advance(stage)
                }
            }
        }
    }

    /// Starts `work` of kernels on `stage`, followed by `tail` of tensor-parallel communication
    /// (`meetings` all-reduces, each of which may wait for a descheduled peer).
    private mutating func compute(_ stage: Int, _ what: Work, work: SimTime, tail: SimTime = .zero, meetings: Int = 0, gathers: SimTime = .zero,
                                  exchanges: SimTime = .zero, ring: SimTime = .zero, ringMeetings: Int = 0) {
        settle()
        // reschedule() gives the phase its version (and every running phase a new one).
        computing[stage] = Phase(work: what, start: queue.now, remaining: work.seconds, tail: tail, meetings: meetings, version: 0, exchanges: exchanges,
                                 ring: ring, ringMeetings: ringMeetings, gathers: gathers)
        reschedule()
    }

    /// The expected wait of `meetings` meetings of `stage` with peers (tensor-parallel
    /// all-reduces; a pipeline message reaching it), given how many ranks compute on the cores
    /// it shares now, itself included.
    private func meetingDelay(_ stage: Int, meetings: Int, acrossNodes: Bool? = nil) -> SimTime {
        guard let sharing, meetings > 0 else { return .zero }
        var busy = 0.0
        for other in computing.indices where computing[other] != nil || other == stage { busy += sharing.peers[stage][other] }
        let across = acrossNodes ?? (sharing.tensorAcrossNodes.indices.contains(stage) && sharing.tensorAcrossNodes[stage])
        return SimTime(seconds: Double(meetings) * sharing.calibration.meetingWait(busy: busy, cores: sharing.cores, acrossNodes: across))
    }

    /// How fast each computing stage progresses now (1: a core of its own).
    private func rate(_ stage: Int) -> Double {
        guard let sharing else { return 1 }
        var busy = 0.0
        for other in computing.indices where computing[other] != nil || sharing.calibration.waitingSpins { busy += sharing.peers[stage][other] }
        return busy > sharing.cores ? sharing.cores / busy : 1
    }

    /// Charges the time since the last change to every running phase at its rate.
    private mutating func settle() {
        let elapsed = (queue.now - settled).seconds
        settled = queue.now
        guard elapsed > 0 else { return }
        let rates = computing.indices.map(rate)
        for stage in computing.indices where computing[stage] != nil { computing[stage]!.remaining -= elapsed * rates[stage] }
    }

    /// Plans each running phase's completion at the current rates (earlier plans go stale).
    private mutating func reschedule() {
        for stage in computing.indices {
            guard var phase = computing[stage] else { continue }
            versions[stage] += 1
            phase.version = versions[stage]
            computing[stage] = phase
            let left = SimTime(seconds: max(0, phase.remaining) / rate(stage))
            queue.schedule(.computed(stage: stage, version: phase.version), at: queue.now + left)
        }
    }

    private mutating func computed(stage: Int, version: Int) {
        guard var phase = computing[stage], phase.version == version else { return }
        settle()
        phase.tail += meetingDelay(stage, meetings: phase.meetings)
        phase.ring += meetingDelay(stage, meetings: phase.ringMeetings,
                                   acrossNodes: sharing.map { $0.contextAcrossNodes.indices.contains(stage) && $0.contextAcrossNodes[stage] })
        computing[stage] = nil
        reschedule()
        let now = queue.now
        if phase.work == .optimizer {
            breakdown[stage].optimizer += now - phase.start
            if recordsSpans { spans.append(StepReport.Span(stage: stage, name: phase.work.name, lane: "compute", start: phase.start, end: now)) }
            finish[stage] = now
            return
        }
        breakdown[stage].compute += now - phase.start
        breakdown[stage].tensorParallel += phase.tail
        breakdown[stage].dataParallelExposed += phase.gathers
        breakdown[stage].expertAllToAll += phase.exchanges
        breakdown[stage].contextParallel += phase.ring
        let end = now + phase.tail + phase.gathers + phase.exchanges + phase.ring
        if recordsSpans { spans.append(StepReport.Span(stage: stage, name: phase.work.name, lane: "compute", start: phase.start, end: end)) }
        queue.schedule(.wake(stage: stage), at: end)
    }

    /// How much longer than alone a stage's kernels would take if it started now.
    private func slowdown(_ stage: Int) -> Double {
        guard let sharing else { return 1 }
        var busy = sharing.peers[stage][stage]
        for other in computing.indices where (computing[other] != nil || sharing.calibration.waitingSpins) && other != stage { busy += sharing.peers[stage][other] }
        return max(1, busy / sharing.cores)
    }

    private mutating func advance(_ stage: Int) {
        let program = programs[stage], cost = costs[stage], now = queue.now
        while position[stage] < program.count {
            let index = position[stage], action = program[index]
            switch action {
            case let .forward(_, c):
                position[stage] += 1
                let pass = cost.chunks[c]
                return compute(stage, .pass(action), work: pass.forward, tail: pass.tensorForward, meetings: pass.tensorSyncs.forward,
                               gathers: pass.exposedGathers(pass.gatherForward, compute: pass.forward), exchanges: pass.expertForward, ring: pass.ringForward,
                               ringMeetings: pass.ringSyncs.forward)
            case let .backward(_, c):
                position[stage] += 1
                let pass = cost.chunks[c]
                if lastBackwards[stage].contains(index) {
                    let expected = SimTime(seconds: pass.backward.seconds * slowdown(stage)) + pass.tensorBackward + pass.expertBackward + pass.ringBackward
                    startBuckets(stage, chunk: c, backwardStart: now, backward: expected)
                }
                return compute(stage, .pass(action), work: pass.backward, tail: pass.tensorBackward, meetings: pass.tensorSyncs.backward,
                               gathers: pass.exposedGathers(pass.gatherBackward, compute: pass.backward), exchanges: pass.expertBackward, ring: pass.ringBackward,
                               ringMeetings: pass.ringSyncs.backward)
            case .sendActivation, .sendGradient:
                position[stage] += 1
                let message = action.message!, to = schedule.stage(ofVirtual: message.to)
                // A receiver on the sender's core gets it only once the sender passes the turn;
                // elsewhere it may be waiting off its core behind a rank that computes there.
                let sameCore = (sharing?.peers[to][stage] ?? 0) > 0 && sharing?.cores == 1
                let transfer = transfers[stage * programs.count + to]!
                    + (sameCore ? SimTime(seconds: sharing?.calibration.handoffWait ?? 0)
                        : meetingDelay(to, meetings: 1, acrossNodes: sharing.map { $0.pipelineAcrossNodes.indices.contains(stage) && $0.pipelineAcrossNodes[stage][to] }))
                queue.schedule(.arrival(tag: message.tag(stages: schedule.virtualStageCount)), at: now + transfer)
            case .receiveActivation, .receiveGradient:
                let wanted = action.message!.tag(stages: schedule.virtualStageCount)
                guard arrivals[wanted] != nil else {
                    waitingFor[stage] = wanted
                    waitingSince[stage] = now
                    return
                }
                position[stage] += 1
            case .optimizerStep:
                let exposed = max(.zero, dataParallelEnd[stage] - now)
                if exposed > .zero {
                    // The optimizer runs once the gradients are complete.
                    breakdown[stage].dataParallelExposed += exposed
                    if recordsSpans { spans.append(StepReport.Span(stage: stage, name: "data-parallel sync", lane: "data-parallel", start: now, end: now + exposed)) }
                    queue.schedule(.wake(stage: stage), at: now + exposed)
                    dataParallelEnd[stage] = .zero
                    return
                }
                position[stage] += 1
                return compute(stage, .optimizer, work: cost.optimizer)
            }
        }
        finish[stage] = max(finish[stage], now)
    }

    /// Buckets become ready as a chunk's last backward pass finishes their layers (evenly over
    /// its duration, last layers first) and run one after another on the communication stream.
    private mutating func startBuckets(_ stage: Int, chunk: Int, backwardStart: SimTime, backward: SimTime) {
        let cost = costs[stage]
        let buckets = cost.dataParallel.indices.filter { cost.bucketChunks[$0] == chunk }
        // With more ranks than cores no core is left to move buckets during the backward pass.
        let overlapped = sharing.map { $0.peers[stage].reduce(0, +) <= $0.cores } ?? true
        var free = max(dataParallelEnd[stage], overlapped ? backwardStart : backwardStart + backward)
        for (n, k) in buckets.enumerated() {
            let ready = backwardStart + SimTime(nanoseconds: backward.nanoseconds * Int64(n + 1) / Int64(buckets.count))
            let start = max(free, ready), time = cost.dataParallel[k]
            if recordsSpans { spans.append(StepReport.Span(stage: stage, name: "bucket \(k)", lane: "data-parallel", start: start, end: start + time)) }
            free = start + time
        }
        dataParallelEnd[stage] = free
    }
}
