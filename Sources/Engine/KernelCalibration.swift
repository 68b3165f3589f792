import Foundation
import Parallelism

/// A CPU device measured by `fleet calibrate`: the sgemm rate of each product shape the
/// model issues, seconds per element of every other kernel, and how many cores the ranks of
/// one node share (more busy ranks than cores run under processor sharing).
public struct KernelCalibration: Sendable, Hashable, Codable {
    /// Measured sgemm FLOP/s by shape (one thread).
    public var gemm: [GEMMShape: Double]
    /// Measured seconds per element.
    public var perElement: [ElementKernel: Double]
    public var cores: Int
    /// How much longer the forward and backward kernels take inside a real training step than
    /// their isolated measurements add up to (colder caches, the code between kernels).
    public var inStep = 1.0
    /// A core's kernel time with every core of the machine computing over its time alone
    /// (`fleet calibrate`'s products on all cores at once): busy cores slow each other.
    public var contention = 1.0
    /// Whether a rank waiting for a peer keeps polling (MPI: it stays runnable and takes its
    /// share of the cores) or sleeps (ZeroMQ: it leaves the cores to the others).
    public var waitingSpins = false
    /// Ranks are pinned round-robin to cores (rank r of a node on core r mod cores), so only
    /// ranks on the same core share it; otherwise the node's ranks share all of its cores.
    public var pinned = false
    /// The nodes are one machine's network namespaces (test hosts): every node's ranks share
    /// these `cores`, pinned by global rank (core r mod cores), not a node's own.
    public var coresSharedByNodes = false
    /// Each core's speed alone over the cores' mean (calibrate's `core_speeds`; empty: not measured).
    /// With `pinned`, the scenario prices each rank at its core's speed (`Asymmetry.cores`).
    public var coreSpeeds: [Double] = []
    /// Each core's best forward and backward of a one-process training step at the scenario's
    /// batch (seconds), alone and with every core computing one (calibrate's contention rounds):
    /// what compare's drift probe times again before each run.
    public var coreSteps: CoreSteps?
    public struct CoreSteps: Sendable, Hashable, Codable {
        public var alone: [Double], together: [Double]
        public init(alone: [Double], together: [Double]) { self.alone = alone; self.together = together }
    }
    /// Extra time of a tensor-parallel-like meeting (a pair all-reduce between compute
    /// chunks) beyond its α–β time, measured with as many ranks as cores (`meetingWait`)
    /// and with twice as many (`oversubscribedMeetingWait`: about a scheduler time slice).
    public var meetingWait = 0.0
    public var oversubscribedMeetingWait = 0.0
    /// The full-load meeting's extra wait for a pair on two nodes (`fleet calibrate --hosts`:
    /// a transport over TCP needs more turns of the scheduler than shared memory); nil: as inside a node.
    public var networkMeetingWait: Double?
    /// With ranks pinned two to a core: what passing the turn to the other rank costs (a
    /// pipeline message to the rank that shares the sender's core).
    public var handoffWait = 0.0
    /// The transport whose links and waits these figures are (`mpi` or `zmq`, calibrate's
    /// `--fabric`): compare warns when it runs another.
    public var transport: String?
    /// The BLAS kernel the rates were measured with (OpenBLAS's name, e.g. "Haswell"); rates
    /// taken with another kernel do not describe this one.
    public var blasKernel: String?
    /// Every repeat calibrate took of each input (the rates above are their medians): what
    /// `fleet compare` draws from for its prediction intervals. Empty when not recorded.
    public var gemmRepeats: [GEMMShape: [Double]] = [:]
    public var perElementRepeats: [ElementKernel: [Double]] = [:]
    public var inStepRepeats: [Double] = []
    /// Every repeat of each wait above (seconds): a meeting's wait moves far more between
    /// repeats than a kernel's rate (spreads of 40–200 % against a few percent).
    public var waitRepeats: [Wait: [Double]] = [:]

    /// The measured waits, by the name calibrate writes them under.
    public enum Wait: String, CaseIterable, Codable, Sendable, Comparable {
        case meeting = "meeting_wait", oversubscribedMeeting = "oversubscribed_meeting_wait"
        case networkMeeting = "network_meeting_wait", handoff = "handoff_wait"
        public static func < (a: Wait, b: Wait) -> Bool { a.rawValue < b.rawValue }
    }

    /// The value of `wait` (nil: a network meeting wait not measured).
    public subscript(wait: Wait) -> Double? {
        get {
            switch wait {
            case .meeting: meetingWait
            case .oversubscribedMeeting: oversubscribedMeetingWait
            case .networkMeeting: networkMeetingWait
            case .handoff: handoffWait
            }
        }
        set {
            switch wait {
            case .meeting: meetingWait = newValue ?? 0
            case .oversubscribedMeeting: oversubscribedMeetingWait = newValue ?? 0
            case .networkMeeting: networkMeetingWait = newValue
            case .handoff: handoffWait = newValue ?? 0
            }
        }
    }

    /// Whether any input kept its repeats.
    public var hasRepeats: Bool { !gemmRepeats.isEmpty || !perElementRepeats.isEmpty || !inStepRepeats.isEmpty || !waitRepeats.isEmpty }

    /// This calibration with every input that kept its repeats replaced by one of them, drawn
    /// by `pick(count)` (an index below count): one sample of what the machine measured, for a
    /// Monte Carlo over the calibration's spread. calibrate takes the kernels' repeats in
    /// rounds (round r of every kernel in the same minute), so the kernels draw one round
    /// together, keeping a slow minute's effect on all of them; `in_step` from the steps taken
    /// after that round (when every round has as many), and each wait (timed in runs of its
    /// own) on its own.
    public func drawn(_ pick: (Int) -> Int) -> KernelCalibration {
        var copy = self
        // The rounds are the products' repeats; a kernel measured otherwise (the optimizer's
        // per-parameter rest of a step, from training steps) draws on its own.
        let rounds = Set(gemmRepeats.values.map(\.count))
        let round = rounds.count == 1 && rounds.first! > 0 ? (count: rounds.first!, index: pick(rounds.first!)) : nil
        func draw(_ repeats: [Double]) -> Double {
            if let round, round.count == repeats.count { return repeats[round.index] }
            return repeats[pick(repeats.count)]
        }
        for (shape, repeats) in gemmRepeats.sorted(by: { $0.key < $1.key }) where !repeats.isEmpty { copy.gemm[shape] = draw(repeats) }
        for kernel in ElementKernel.allCases {
            if let repeats = perElementRepeats[kernel], !repeats.isEmpty { copy.perElement[kernel] = draw(repeats) }
        }
        // calibrate takes the same number of training steps after each round, each over that
        // round's kernels: a round's steps go with its kernels.
        if let round, !inStepRepeats.isEmpty, inStepRepeats.count % round.count == 0 {
            let perRound = inStepRepeats.count / round.count
            copy.inStep = inStepRepeats[round.index * perRound + pick(perRound)]
        } else if !inStepRepeats.isEmpty {
            copy.inStep = inStepRepeats[pick(inStepRepeats.count)]
        }
        for wait in Wait.allCases {
            if let repeats = waitRepeats[wait], !repeats.isEmpty, self[wait] != nil { copy[wait] = repeats[pick(repeats.count)] }
        }
        return copy
    }

    /// This calibration on a machine `speed` times as fast (0.9: 10 % slower): every kernel's
    /// rate, and each of its repeats, scaled; the ratios and waits stay as measured.
    public func scaled(speed: Double) -> KernelCalibration {
        var copy = self
        copy.gemm = gemm.mapValues { $0 * speed }
        copy.gemmRepeats = gemmRepeats.mapValues { $0.map { $0 * speed } }
        copy.perElement = perElement.mapValues { $0 / speed }
        copy.perElementRepeats = perElementRepeats.mapValues { $0.map { $0 / speed } }
        return copy
    }

    public init(gemm: [GEMMShape: Double], perElement: [ElementKernel: Double], cores: Int) {
        self.gemm = gemm
        self.perElement = perElement
        self.cores = cores
    }

    /// The rate of `shape`: measured, or that of the nearest measured shape (log distance over
    /// m, n and k; same transposes preferred); `fallback` when none was measured.
    public func rate(_ shape: GEMMShape, fallback: Double = 1e9) -> Double {
        if let exact = gemm[shape] { return exact }
        func distance(_ other: GEMMShape) -> Double {
            let d = [(shape.m, other.m), (shape.n, other.n), (shape.k, other.k)].reduce(0.0) { sum, pair in
                let x = log(Double(max(pair.0, 1)) / Double(max(pair.1, 1)))
                return sum + x * x
            }
            return d + (shape.transA == other.transA && shape.transB == other.transB ? 0 : 0.25)
        }
        guard let nearest = gemm.keys.min(by: { (distance($0), $0) < (distance($1), $1) }) else { return fallback }
        return gemm[nearest]!
    }

    /// The expected extra wait of one meeting with a peer while `busy` ranks compute on the
    /// `cores` a rank may run on (its node's, or its own when pinned): none with a core to spare; with every core taken, the measured full-load wait;
    /// beyond, the chance the peer is off a core (1 − cores/busy) times half the measured
    /// wait for a descheduled peer, whichever is larger.
    /// `acrossNodes`: the peer is on another node (the measured wait between nodes applies).
    public func meetingWait(busy: Double, cores c: Double, acrossNodes: Bool = false) -> Double {
        guard busy >= c else { return 0 }
        return max(acrossNodes ? networkMeetingWait ?? meetingWait : meetingWait, (1 - c / busy) * oversubscribedMeetingWait / 2)
    }

    /// This calibration for a step where `ranks` ranks of one machine compute side by side:
    /// the kernels slowed by the contention of min(ranks, cores) busy cores, interpolated
    /// linearly from none (one core busy) to the measured factor (every core busy).
    public func underLoad(ranks: Int) -> KernelCalibration {
        guard contention != 1, cores > 1 else { return self }
        var copy = self
        let busy = Double(min(max(ranks, 1), cores))
        copy.inStep *= 1 + (contention - 1) * (busy - 1) / Double(cores - 1)
        copy.inStepRepeats = inStepRepeats.map { $0 * copy.inStep / inStep }
        return copy
    }

    /// Single-core seconds of forward or backward `work` inside a training step.
    public func stepSeconds(_ work: KernelWork) -> Double { seconds(work) * inStep }

    /// Single-core seconds of `work`, kernel by kernel as measured alone.
    public func seconds(_ work: KernelWork) -> Double {
        var total = 0.0
        for (shape, count) in work.gemms { total += Double(count) * shape.flops.seconds(at: rate(shape)) }
        for (kernel, count) in work.elements { total += count * (perElement[kernel] ?? 0) }
        return total
    }

    /// Kernels the calibration has no figure for (they would be priced at zero).
    public var missing: [ElementKernel] { ElementKernel.allCases.filter { perElement[$0] == nil } }
}
