import Foundation
import HeapModule

/// Failures over days of training: per-component failure processes, checkpoints, rollbacks
/// and restarts, and what they cost in goodput.
public struct ReliabilityModel: Sendable {
    /// A kind of component and how it fails.
    public struct Component: Sendable, Hashable {
        public enum Distribution: Sendable, Hashable {
            case exponential
            /// Weibull lifetimes with this shape (< 1: infant mortality, > 1: wear-out), scaled to the MTTF.
            case weibull(shape: Double)
        }
        public var name: String
        public var count: Int
        /// Mean time to failure of one unit.
        public var mttf: Double
        public var distribution: Distribution = .exponential

        public init(name: String, count: Int, mttf: Double, distribution: Distribution = .exponential) {
            self.name = name
            self.count = count
            self.mttf = mttf
            self.distribution = distribution
        }
    }

    public enum Checkpointing: String, Sendable, Hashable, CaseIterable {
        /// Training stops while the state is written to storage.
        case sync
        /// A snapshot to host memory stalls training; the write to storage runs behind it.
        case async
        /// Each host keeps its state and a peer's (replicated over the network); restarts reload from peers.
        case inMemory = "in-memory"
    }

    public var components: [Component]
    /// Simulated wall time (seconds).
    public var duration: Double
    /// Useful training time between checkpoints (seconds).
    public var checkpointInterval: Double
    public var checkpointing: Checkpointing = .sync
    /// Write time of one checkpoint to storage, and the stall it causes (for sync both are the write).
    public var checkpointWrite: Double
    public var snapshotStall: Double = 0
    /// Reload time of the newest checkpoint at a restart.
    public var reload: Double
    /// From the failure to noticing it, and from there to the replacement job being scheduled.
    public var detection: Double = 60
    public var rescheduling: Double = 300
    /// Replacing a failed unit without a spare; spares (whole nodes) skip the wait.
    public var repair: Double = 4 * 3600
    public var spares: Int = 0
    /// Scheduled maintenance: every `every` seconds the job stops for `lasts`.
    public var maintenance: (every: Double, lasts: Double)?
    /// Preemptions with notice (a checkpoint is saved first): on average every `meanInterval`, then `wait` for capacity.
    public var preemptions: (meanInterval: Double, wait: Double)?
    /// A fraction of devices running `stragglerFactor` times slower; synchronous training waits for the slowest.
    public var stragglerFraction: Double = 0
    public var stragglerFactor: Double = 1
    public var gpus: Int = 1
    public var seed: UInt64 = 1

    public init(components: [Component], duration: Double, checkpointInterval: Double, checkpointWrite: Double, reload: Double) {
        self.components = components
        self.duration = duration
        self.checkpointInterval = checkpointInterval
        self.checkpointWrite = checkpointWrite
        self.reload = reload
    }

    /// 1 / Σ(nᵢ / MTTFᵢ): the mean time between failures of the whole cluster (exponential lifetimes).
    public var clusterMTBF: Double { 1 / components.reduce(0) { $0 + Double($1.count) / $1.mttf } }

    /// The stall a checkpoint costs training.
    public var checkpointStall: Double { checkpointing == .sync ? checkpointWrite : snapshotStall }

    /// Young (1974) / Daly (2006) first order: √(2 · δ · MTBF), δ the checkpoint's cost to training.
    public var youngDalyInterval: Double { (2 * max(checkpointStall, 1e-9) * clusterMTBF).squareRoot() }

    /// The most failures and checkpoints one run steps through, event by event.
    public static let eventLimits = (failures: 1_000_000.0, checkpoints: 10_000_000.0)

    /// Why this run (and a sweep over `intervals`) cannot be simulated event by event, or nil:
    /// more failures or checkpoints in `duration` than the simulator steps through.
    public func problem(intervals: [Double] = []) -> String? {
        let days = String(format: "%.3g d", duration / 86_400)
        if max(checkpointWrite, reload, checkpointStall) >= SimTime.limit.seconds {
            return String(format: "writing or reloading a checkpoint would take more than %.0e s: check the storage's bandwidths and latency", SimTime.limit.seconds)
        }
        let failures = duration / clusterMTBF
        if !(failures <= Self.eventLimits.failures) {
            return String(format: "the components' MTTFs give about %.3g failures in %@ (a cluster MTBF of %.3g s), more than the %.0f the "
                          + "simulator steps through: check the mttf values and their units", failures, days, clusterMTBF, Self.eventLimits.failures)
        }
        for interval in [checkpointInterval] + intervals where !(duration / interval <= Self.eventLimits.checkpoints) {
            return String(format: "a checkpoint every %.3g s over %@ is %.3g checkpoints, more than the %.0f the simulator steps through: "
                          + "lengthen the interval (or, for auto, check the checkpoint's size and storage)", interval, days,
                          duration / interval, Self.eventLimits.checkpoints)
        }
        return nil
    }
}

/// What a simulated campaign found.
public struct ReliabilityReport: Sendable {
    public var wall: Double
    /// Useful training time (work that was kept).
    public var useful: Double
    public var goodput: Double { wall > 0 ? useful / wall : 0 }
    public var rework = 0.0, restart = 0.0, checkpointStalls = 0.0, stragglers = 0.0, repairWait = 0.0
    /// Announced stops: maintenance windows and preemptions (no work lost, only time).
    public var maintenance = 0.0, preemptions = 0.0
    public var failures = 0
    public var failuresByComponent: [String: Int] = [:]
    public var checkpoints = 0
    public var interval = 0.0
}

extension ReliabilityModel {
    /// Simulates `duration` of wall time: failures from every component, the job computing
    /// between checkpoints, rolling back to the newest completed checkpoint at each failure.
    public func simulate() -> ReliabilityReport {
        // Announced stops (maintenance windows, preemptions with notice) lose no work: they take
        // their expected share of the wall time, and failures play out over the rest.
        let planned = plannedDowntime
        let duration = max(0, self.duration - planned.maintenance - planned.preemptions)
        var report = simulateRunning(duration)
        report.wall = self.duration
        report.maintenance = planned.maintenance
        report.preemptions = planned.preemptions
        return report
    }

    /// Downtime of the announced stops over the run: each maintenance window, and each expected
    /// preemption's checkpoint at the notice, wait for capacity, rescheduling and reload.
    public var plannedDowntime: (maintenance: Double, preemptions: Double) {
        let restart = rescheduling + reload
        let maintenanceTime = maintenance.map { (duration / $0.every).rounded(.down) * ($0.lasts + restart) } ?? 0
        let preemptionTime = preemptions.map { duration / $0.meanInterval * (checkpointStall + $0.wait + restart) } ?? 0
        return (min(maintenanceTime, duration), min(preemptionTime, max(0, duration - maintenanceTime)))
    }

    func simulateRunning(_ duration: Double) -> ReliabilityReport {
        var random = SplitMix64(seed: seed)
        var failures = FailureSource(components: components, random: &random)
        // Synchronous training runs at the pace of its slowest device.
        let slowed = stragglerFraction > 0 ? 1 - pow(1 - stragglerFraction, Double(gpus)) : 0
        let pace = 1 / (1 + (stragglerFactor - 1) * slowed)

        var report = ReliabilityReport(wall: duration, useful: 0)
        report.interval = checkpointInterval
        var now = 0.0
        var kept = 0.0              // useful work saved in the newest completed checkpoint
        var sinceCheckpoint = 0.0   // work done after it
        var pendingWrite: (completes: Double, work: Double)?   // async write in flight
        var repairs: [Double] = []  // when borrowed spares come back
        var nextFailure = failures.next(&random)

        // A failure at `now`: the work since the newest completed checkpoint is lost (its
        // straggler slowdown is already counted as such), and so is an async write still in
        // flight; then the job is down — detection, rescheduling, a spare node (or the
        // repair), reloading — and only the part of that inside the simulated time counts.
        func fail() {
            report.failures += 1
            report.failuresByComponent[nextFailure.component, default: 0] += 1
            report.rework += sinceCheckpoint
            sinceCheckpoint = 0
            if let write = pendingWrite {
                if write.completes > now { report.rework += write.work - kept } else { kept = write.work }
                pendingWrite = nil
            }
            var down = detection + rescheduling, wait = 0.0
            repairs.removeAll { $0 <= now }
            if spares - repairs.count > 0 { repairs.append(now + repair) } else {
                wait = max(0, repair - down)
                down += wait
            }
            down += reload
            let inside = min(down, duration - now)
            report.restart += inside
            report.repairWait += max(0, min(wait, inside - detection - rescheduling))
            let back = now + down
            // Failures while the job is down (within the simulated time) are counted; the
            // recovery under way covers them.
            nextFailure = failures.next(&random)
            while nextFailure.time < min(back, duration) {
                report.failures += 1
                report.failuresByComponent[nextFailure.component, default: 0] += 1
                nextFailure = failures.next(&random)
            }
            now = min(back, duration)
        }

        while now < duration {
            // Compute until the next checkpoint is due, a failure, or the end.
            let workLeft = checkpointInterval - sinceCheckpoint
            let computeEnd = now + workLeft / pace
            if let write = pendingWrite, write.completes <= min(computeEnd, nextFailure.time) {
                kept = write.work
                pendingWrite = nil
            }
            if nextFailure.time < min(computeEnd, duration) {
                let done = (nextFailure.time - now) * pace
                sinceCheckpoint += done
                report.stragglers += (nextFailure.time - now) - done
                now = nextFailure.time
                fail()
                continue
            }
            if computeEnd >= duration {
                let done = (duration - now) * pace
                sinceCheckpoint += done
                report.stragglers += (duration - now) - done
                now = duration
                break
            }
            report.stragglers += max(0, (computeEnd - now) - workLeft)
            sinceCheckpoint = checkpointInterval
            now = computeEnd
            // The checkpoint: a stall, then (sync) it is complete, or (async) it completes later.
            let stall = min(checkpointStall, duration - now)
            report.checkpoints += 1
            // A write still in flight is superseded by this one, which holds its work too.
            let work = (pendingWrite?.work ?? kept) + sinceCheckpoint
            if nextFailure.time < now + stall {
                report.checkpointStalls += nextFailure.time - now
                now = nextFailure.time
                fail()
                continue
            }
            report.checkpointStalls += stall
            now += stall
            switch checkpointing {
            case .sync, .inMemory: kept = work
            case .async: pendingWrite = (now + checkpointWrite - stall, work)
            }
            sinceCheckpoint = 0
        }
        // Nothing is rolled back at the end: a write still in flight saved work that was done.
        report.useful = (pendingWrite?.work ?? kept) + sinceCheckpoint
        return report
    }

    /// Goodput per checkpoint interval, with the same failures for every interval (common
    /// random numbers), and the best one.
    public func sweep(intervals: [Double]) -> (reports: [ReliabilityReport], best: ReliabilityReport) {
        let reports = intervals.map { interval -> ReliabilityReport in
            var model = self
            model.checkpointInterval = interval
            return model.simulate()
        }
        return (reports, reports.max { $0.goodput < $1.goodput }!)
    }
}

/// The failures of all components in time order: one Poisson stream per exponential kind
/// (the superposition of its units), one renewal process per unit for Weibull kinds.
struct FailureSource {
    private struct Pending: Comparable {
        let time: Double, kind: Int, unit: Int
        static func < (a: Pending, b: Pending) -> Bool { a.time != b.time ? a.time < b.time : (a.kind, a.unit) < (b.kind, b.unit) }
    }
    private let components: [ReliabilityModel.Component]
    private var heap = Heap<Pending>()

    init(components: [ReliabilityModel.Component], random: inout SplitMix64) {
        self.components = components
        for (kind, component) in components.enumerated() where component.count > 0 && component.mttf > 0 {
            switch component.distribution {
            case .exponential: heap.insert(Pending(time: lifetime(kind, at: 0, &random), kind: kind, unit: -1))
            case .weibull: for unit in 0..<component.count { heap.insert(Pending(time: lifetime(kind, at: 0, &random), kind: kind, unit: unit)) }
            }
        }
    }

    private func lifetime(_ kind: Int, at now: Double, _ random: inout SplitMix64) -> Double {
        let c = components[kind], u = random.unit()
        switch c.distribution {
        case .exponential: return now - log(u) * c.mttf / Double(c.count)
        case .weibull(let shape):
            // Scale so that the mean is the MTTF: mean = λ Γ(1 + 1/k).
            let scale = c.mttf / tgamma(1 + 1 / shape)
            return now + scale * pow(-log(u), 1 / shape)
        }
    }

    mutating func next(_ random: inout SplitMix64) -> (time: Double, component: String) {
        guard let first = heap.popMin() else { return (.infinity, "") }
        heap.insert(Pending(time: lifetime(first.kind, at: first.time, &random), kind: first.kind, unit: first.unit))
        return (first.time, components[first.kind].name)
    }
}

/// A small, fast, seedable generator (Steele et al.'s SplitMix64).
public struct SplitMix64: Sendable, RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    public mutating func unit() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }
    /// Uniform in 0..<n (n ≥ 1; the modulo bias is negligible for small n).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}
