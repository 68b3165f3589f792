import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Workload

/// How fast this machine runs now against its calibration: the calibration's heaviest product
/// shapes timed again, one thread, the way `fleet calibrate` timed them. `fleet compare` probes
/// right before each layout's run, so a layout measured in a slow (or fast) minute says so.
public struct DriftProbe: Sendable {
    public let calibration: KernelCalibration
    public let model: ModelSpec
    public let sequence: Int
    /// Shapes probed: the calibration's heaviest (their rates are the steadiest).
    public let shapes: [GEMMShape]
    /// Rounds of the probe, each timing every shape once for at least 10 ms.
    public var rounds = 9
    /// The batch of calibrate's training steps (the scenario's), for `stepSpeeds`.
    public var stepBatch: Int?

    public init(calibration: KernelCalibration, model: ModelSpec, sequence: Int, shapes count: Int = 3) {
        self.calibration = calibration
        self.model = model
        self.sequence = sequence
        shapes = calibration.gemm.keys.sorted { ($0.flops.count, "\($0)") > ($1.flops.count, "\($1)") }.prefix(count).map { $0 }
    }

    /// The speed now over the calibrated speed (1: unchanged, 0.8: 20 % slower now): the
    /// geometric mean over the probed shapes of their best rate now (of `rounds`) over their best calibrated
    /// rate (the calibrated rate when no repeats were kept). Best against best: a host's noise
    /// only ever slows a kernel, and a probe of a tenth of a second catches a passing blip
    /// that its median would report as drift (medians read −26 to −36 % before runs that then
    /// stepped at the calibrated speed); a slowdown that lasts slows every repeat, best included.
    public func speed() -> Double {
        guard !shapes.isEmpty else { return 1 }
        // One BLAS thread, as calibrate measured (OpenBLAS would otherwise use every core).
        BLAS.setThreads(1)
        // The shapes take turns, so each one's repeats spread over the whole probe (about 0.3 s)
        // and a hiccup of this VM (steps of 125 ms now and then take 160–210) cannot cover them all.
        let timers = self.timers()
        var best = [Double](repeating: 0, count: shapes.count)
        for _ in 0..<rounds {
            for (i, timer) in timers.enumerated() { best[i] = max(best[i], timer().samples.max() ?? 0) }
        }
        return against(best)
    }

    /// The speed now of each of `cores` cores over the calibrated speed (`speed()` on each core
    /// in turn, a thread pinned to it, the others idle, as a one-rank layout computes): ranks are
    /// pinned, so a core that slowed since calibrate (a virtual machine's cores move apart: one
    /// calibration read 1.16 and 0.88 × their mean, the next 1.02 and 0.98) slows only the ranks
    /// on it. The cores take turns round by round, like the shapes.
    public func speeds(cores: Int) -> [Double] {
        guard cores > 1 else { return [speed()] }
        let result = TimeSlots(count: cores), done = DispatchSemaphore(value: 0), probe = self
        let thread = Thread {
            var best = [[Double]](repeating: [Double](repeating: 0, count: probe.shapes.count), count: cores)
            BLAS.setThreads(1)
            let timers = probe.timers()
            for _ in 0..<probe.rounds {
                for core in 0..<cores {
                    WorldSetup.pin(rank: core)
                    for (i, timer) in timers.enumerated() { best[core][i] = max(best[core][i], timer().samples.max() ?? 0) }
                }
            }
            for (core, rates) in best.enumerated() { result.pointer[core] = probe.against(rates) }
            done.signal()
        }
        thread.start()
        done.wait()
        return Array(UnsafeBufferPointer(start: result.pointer, count: cores))
    }

    /// The speed now of each of `cores` cores with every core probing at once, as a layout's
    /// ranks compute, over the calibrated speed under that load (the calibrated rates slowed by
    /// the calibration's `contention`). A host that holds this machine back only while all its
    /// cores are busy slows a multi-rank run and not a probe on one core: tp2 once stepped at
    /// 119 ms (74–83 in the other pairs) right after a one-core probe that read 0 %.
    public func speedsTogether(cores: Int) -> [Double] {
        guard cores > 1 else { return [speed()] }
        let result = TimeSlots(count: cores), ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        let probe = self
        for core in 0..<cores {
            done.enter()
            Thread {
                WorldSetup.pin(rank: core)
                BLAS.setThreads(1)
                let timers = probe.timers()
                var best = [Double](repeating: 0, count: probe.shapes.count)
                ready.signal()
                go.wait()
                for _ in 0..<probe.rounds {
                    for (i, timer) in timers.enumerated() { best[i] = max(best[i], timer().samples.max() ?? 0) }
                }
                result.pointer[core] = probe.against(best) * probe.calibration.contention
                done.leave()
            }.start()
        }
        // Every thread pinned and its buffers filled before any starts probing.
        for _ in 0..<cores { ready.wait() }
        for _ in 0..<cores { go.signal() }
        done.wait()
        return Array(UnsafeBufferPointer(start: result.pointer, count: cores))
    }

    /// Each core's speed now from real training steps (calibrate's contention block: a
    /// one-process step's forward and backward, a trainer per core) against calibrate's best
    /// step on that core: alone, each core in turn, or `together`, every core at once — what a
    /// run's ranks compute, memory-bound kernels included, which a burst of products misses.
    /// nil without that reference (a calibration from before it, one core, no `stepBatch`) or
    /// when a step fails.
    public func stepSpeeds(cores: Int, together: Bool, rounds: Int = 3) -> [Double]? {
        guard let steps = calibration.coreSteps, let batch = stepBatch, cores > 1,
              steps.alone.count == cores, steps.together.count == cores else { return nil }
        var block = CoreContention(shapes: [], rates: { _ in 1e9 }, rounds: rounds, cores: cores)
        block.steps = (model, batch)
        var best = [Double](repeating: .infinity, count: cores)
        for _ in 0..<rounds {
            let times = together ? block.runBlocks(on: Array(0..<cores)) : (0..<cores).map { block.runBlocks(on: [$0])[0] }
            for core in 0..<cores where times[core].isFinite { best[core] = min(best[core], times[core]) }
        }
        guard best.allSatisfy(\.isFinite) else { return nil }
        return zip(together ? steps.together : steps.alone, best).map { $0 / $1 }
    }

    /// A timer per probed shape, one repeat each, buffers made once for the whole probe.
    func timers() -> [() -> Measurement] {
        let bench = KernelBenchmark(model: model, sequence: sequence, repeats: 1)
        return shapes.map(bench.gemmTimer)
    }

    /// The geometric mean over the shapes of `best` (one rate per shape) over their best calibrated rate.
    func against(_ best: [Double]) -> Double {
        let logs = zip(shapes, best).map { shape, rate in log(rate / (calibration.gemmRepeats[shape]?.max() ?? calibration.rate(shape))) }
        return exp(logs.reduce(0, +) / Double(logs.count))
    }
}
