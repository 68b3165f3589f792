import Engine
import Parallelism
import Workflows
import Workload
import XCTest

/// compare's prediction interval: simulations over the calibration's recorded repeats. With
/// every repeat at the median the interval is the prediction itself; with spread, it brackets it.
final class PredictionIntervalTests: XCTestCase {
    func scenario(spread: Double) -> Scenario {
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
}
