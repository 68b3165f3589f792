import Engine
import Parallelism
import Workflows
import Workload
import XCTest

/// compare's prediction interval: simulations over the calibration's recorded repeats. With
/// every repeat at the median the interval is the prediction itself; with spread, it brackets it.
final class PredictionIntervalTests: XCTestCase {
    func scenario(spread: Double) -> Scenario { Self.scenario(spread: spread) }

    static func scenario(spread: Double) -> Scenario {
        var device = DeviceCatalog.local
        let shapes = KernelWork.stages(model: ModelCatalog.gptTiny, layout: ParallelLayout(dp: 2), batch: 8, sequence: 128)
            .flatMap { Array($0.forward.gemms.keys) + Array($0.backward.gemms.keys) }
        var calibration = KernelCalibration(gemm: Dictionary(shapes.map { ($0, 50e9) }, uniquingKeysWith: { a, _ in a }),
                                            perElement: Dictionary(uniqueKeysWithValues: ElementKernel.allCases.map { ($0, 1e-9) }), cores: 2)
        calibration.gemmRepeats = calibration.gemm.mapValues { [$0 * (1 - spread), $0, $0 * (1 + spread)] }
        calibration.perElementRepeats = calibration.perElement.mapValues { [$0 * (1 - spread), $0, $0 * (1 + spread)] }
        calibration.inStepRepeats = [1 - spread / 2, 1, 1 + spread / 2]
        device.calibration = calibration
        let link = Link(bandwidth: Bandwidth(bytesPerSecond: 2e9), latency: SimTime(seconds: 20e-6))
        var s = Scenario(name: "interval", device: device, nodes: 1, gpusPerNode: 2, topology: .singleSwitch,
                         scaleUp: link, scaleOut: link, model: ModelCatalog.gptTiny, batch: 8, sequence: 128, layout: ParallelLayout(dp: 2))
        s.precision = .fp32
        return s
    }

    func comparison(_ s: Scenario) -> Comparison {
        Comparison(model: ModelCatalog.gptTiny, batch: 8, steps: 10, warmup: 2, base: s, transport: "zmq")
    }

    func testTheIntervalComesFromTheRepeats() throws {
        let still = scenario(spread: 0)
        let median = StepSimulator(scenario: still).run().stepTime.seconds
        let flat = try XCTUnwrap(comparison(still).interval(still, seed: "dp2"))
        XCTAssertEqual(flat.p10, median, accuracy: median * 1e-12, "every repeat at the median: no spread")
        XCTAssertEqual(flat.p90, median, accuracy: median * 1e-12)

        let noisy = scenario(spread: 0.3)
        let band = try XCTUnwrap(comparison(noisy).interval(noisy, seed: "dp2"))
        XCTAssertLessThan(band.p10, median)
        XCTAssertGreaterThan(band.p90, median)
        XCTAssertLessThan(band.p90 / band.p10, 1.3 / 0.7 * 1.2, "never wider than every input at its extremes")
        let again = try XCTUnwrap(comparison(noisy).interval(noisy, seed: "dp2"))
        XCTAssertEqual(again.p10, band.p10, "seeded: the same interval every time")
        var none = noisy
        none.device.calibration?.gemmRepeats = [:]
        none.device.calibration?.perElementRepeats = [:]
        none.device.calibration?.inStepRepeats = []
        XCTAssertNil(comparison(none).interval(none, seed: "dp2"), "a calibration without repeats gives no interval")
    }

    /// Drift control by rescaling: the row simulated again on the calibration scaled to the
    /// probed speed. No drift: the prediction itself; a machine at half speed: every kernel twice
    /// as long (gpt-tiny dp2 on a non-blocking link: the step is nearly all compute), and the
    /// interval moves with it.
    func testDriftRescalesThePredictionAndItsInterval() throws {
        let noisy = scenario(spread: 0.3)
        let compare = comparison(noisy)
        var row = try compare.simulate(ParallelLayout(dp: 2))
        XCTAssertNil(row.driftAdjusted, "nothing to rescale by before the probe")
        row.drift = 0
        try compare.adjustForDrift(&row)
        XCTAssertEqual(try XCTUnwrap(row.driftAdjusted).step, row.simulated.stepTime.seconds, accuracy: 1e-12)
        row.drift = -0.5
        try compare.adjustForDrift(&row)
        let adjusted = try XCTUnwrap(row.driftAdjusted), band = try XCTUnwrap(adjusted.interval), before = try XCTUnwrap(row.interval)
        let compute = row.simulatedCompute, step = row.simulated.stepTime.seconds
        XCTAssertEqual(adjusted.step, step + compute, accuracy: (step - compute) + step * 0.01, "compute doubled, the rest about as it was")
        XCTAssertGreaterThan(band.p10, before.p10 * 1.5)
        XCTAssertGreaterThan(band.p90, before.p90 * 1.5)
        XCTAssertTrue(band.p10 < adjusted.step && adjusted.step < band.p90)
        var scaled = try XCTUnwrap(noisy.device.calibration).scaled(speed: 2)
        XCTAssertEqual(scaled.perElement[.geluForward]!, 0.5e-9, accuracy: 1e-21)
        XCTAssertEqual(scaled.gemmRepeats.values.first?.last, 2 * 50e9 * 1.3)
        scaled.inStep = 1
        XCTAssertEqual(scaled.inStepRepeats, noisy.device.calibration!.inStepRepeats, "ratios stay as measured")
    }

    /// Pinned ranks: the probe's speed of each core prices the ranks on it. Core 1 at half the
    /// speed of core 0 (mean 0.75): dp2 waits for its rank on core 1, computing at half speed.
    func testEachPinnedRankIsRescaledToItsOwnCoresSpeed() throws {
        var pinned = scenario(spread: 0)
        pinned.device.calibration!.pinned = true
        let compare = comparison(pinned)
        var row = try compare.simulate(ParallelLayout(dp: 2))
        (row.drift, row.coreSpeeds) = (-0.25, [1.0, 0.5])
        try compare.adjustForDrift(&row)
        var slow = row
        (slow.drift, slow.coreSpeeds) = (-0.5, nil)
        try compare.adjustForDrift(&slow)
        XCTAssertEqual(try XCTUnwrap(row.driftAdjusted).step, try XCTUnwrap(slow.driftAdjusted).step, accuracy: 1e-7,
                       "as if the whole machine ran at the slower core's speed")
        // Ranks that roam the cores take the mean.
        var roaming = try comparison(scenario(spread: 0)).simulate(ParallelLayout(dp: 2))
        (roaming.drift, roaming.coreSpeeds) = (-0.25, [1.0, 0.5])
        try comparison(scenario(spread: 0)).adjustForDrift(&roaming)
        var mean = roaming
        (mean.drift, mean.coreSpeeds) = (-0.25, nil)
        try comparison(scenario(spread: 0)).adjustForDrift(&mean)
        XCTAssertEqual(try XCTUnwrap(roaming.driftAdjusted).step, try XCTUnwrap(mean.driftAdjusted).step, accuracy: 1e-12)
        XCTAssertTrue(JSONLine.encode(row.record).contains("\"core_speeds_now\":[1.0,0.5]"))
    }
}

/// A run that changes pace while it runs: the slowest third of its steps against the fastest.
final class PaceSpreadTests: XCTestCase {
    func logs(_ milliseconds: [Double]) -> StepLogs {
        var logs = StepLogs()
        logs.steps = milliseconds.map { $0 / 1000 }
        return logs
    }

    func testASteadyRunHasNoSpreadAndASwitchOfPaceShows() throws {
        XCTAssertEqual(logs(Array(repeating: 70, count: 24)).paceSpread, 0)
        // dp2 here: 117 ms a step, then 65–79 from the 21st of 25 measured steps: the last third (9 steps, 5 fast) has a median of 79.
        let switched = logs(Array(repeating: 117, count: 20) + [73, 68, 65, 79, 65])
        XCTAssertEqual(switched.paceSpread, 117.0 / 79.0 - 1, accuracy: 1e-12)
        let later = logs(Array(repeating: 117, count: 13) + Array(repeating: 70, count: 12))
        XCTAssertEqual(later.paceSpread, 117.0 / 70.0 - 1, accuracy: 1e-12)
        // One slow step in a third moves no median; under 6 steps nothing is judged.
        XCTAssertEqual(logs([70, 70, 200, 70, 70, 70, 70, 70, 70]).paceSpread, 0)
        XCTAssertEqual(logs([70, 140, 70, 140, 70]).paceSpread, 0)

        // The row: unsteady when its pace spread or its probe's drift passes the tolerance.
        let compare = Comparison(model: ModelCatalog.gptTiny, batch: 8, steps: 10, warmup: 2, base: PredictionIntervalTests.scenario(spread: 0), transport: "zmq")
        var row = try compare.simulate(ParallelLayout(dp: 2))
        row.measured = logs(Array(repeating: 70, count: 24))
        row.drift = 0.02
        XCTAssertFalse(row.unsteady)
        row.drift = -0.12
        XCTAssertTrue(row.unsteady)
        XCTAssertEqual(row.unsteadiness, 0.12, accuracy: 1e-12)
        row.drift = 0
        row.measured = later
        XCTAssertTrue(row.unsteady)
        let table = ComparisonRow.table([row]).joined(separator: "\n")
        XCTAssertTrue(table.contains("! measured on an unsteady machine") && table.contains("pace spread 67%"), table)
    }
}
