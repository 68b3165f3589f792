import Engine
import Foundation
import Parallelism
import Tensor
import Workload

/// How fast this machine runs now against its calibration: the calibration's heaviest product
/// shapes timed again, one thread, the way `fleet calibrate` timed them. `fleet compare` probes
/// right before each layout's run, so a layout measured in a slow (or fast) minute says so.
public struct DriftProbe {
    public let calibration: KernelCalibration
    public let model: ModelSpec
    public let sequence: Int
    /// Shapes probed: the calibration's heaviest (their rates are the steadiest).
    public let shapes: [GEMMShape]
    /// Rounds of the probe, each timing every shape once for at least 10 ms.
    public var rounds = 9

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
        let bench = KernelBenchmark(model: model, sequence: sequence, repeats: 1)
        var best = [Double](repeating: 0, count: shapes.count)
        for _ in 0..<rounds {
            for (i, shape) in shapes.enumerated() { best[i] = max(best[i], bench.gemm(shape).samples.max() ?? 0) }
        }
        let logs = zip(shapes, best).map { shape, rate in log(rate / (calibration.gemmRepeats[shape]?.max() ?? calibration.rate(shape))) }
        return exp(logs.reduce(0, +) / Double(logs.count))
    }
}
