import Engine
import Parallelism
import Workflows
import Workload
import XCTest

/// The drift probe times the calibration's heaviest shapes again: against a calibration that
/// claims a thousandfold faster (or slower) machine it must say so, whatever the machine's noise.
final class DriftProbeTests: XCTestCase {
    func calibration(rate: Double) -> KernelCalibration {
        let shapes = [GEMMShape(m: 128, n: 128, k: 128), GEMMShape(m: 256, n: 128, k: 512), GEMMShape(m: 64, n: 64, k: 64)]
        return KernelCalibration(gemm: Dictionary(uniqueKeysWithValues: shapes.map { ($0, rate) }), perElement: [:], cores: 1)
    }

    func testTheProbeComparesTheMachineWithItsCalibration() {
        let model = ModelCatalog.gptTiny
        let fast = DriftProbe(calibration: calibration(rate: 1e14), model: model, sequence: 64)
        XCTAssertEqual(fast.shapes.first, GEMMShape(m: 256, n: 128, k: 512), "the heaviest shape first")
        XCTAssertEqual(fast.shapes.count, 3)
        XCTAssertLessThan(fast.speed(), 0.01, "a CPU core does not reach 100 TFLOP/s: the machine is far slower than that calibration")
        XCTAssertGreaterThan(DriftProbe(calibration: calibration(rate: 1e6), model: model, sequence: 64).speed(), 100,
                             "and far faster than 1 MFLOP/s")
        XCTAssertEqual(DriftProbe(calibration: KernelCalibration(gemm: [:], perElement: [:], cores: 1), model: model, sequence: 64).speed(), 1,
                       "nothing to probe: no drift claimed")
    }

    /// One figure per core, each from a thread pinned to it, each against the same calibration.
    func testEachCoreIsProbedOnItsOwn() throws {
        let model = ModelCatalog.gptTiny
        let speeds = DriftProbe(calibration: calibration(rate: 1e14), model: model, sequence: 64).speeds(cores: 2)
        XCTAssertEqual(speeds.count, 2)
        XCTAssertTrue(speeds.allSatisfy { $0 > 0 && $0 < 0.01 }, "\(speeds)")
        XCTAssertEqual(DriftProbe(calibration: calibration(rate: 1e6), model: model, sequence: 64).speeds(cores: 1).count, 1)
        // Every core at once, against the calibrated rates slowed by the calibrated contention.
        let together = DriftProbe(calibration: calibration(rate: 1e14), model: model, sequence: 64).speedsTogether(cores: 2)
        XCTAssertTrue(together.count == 2 && together.allSatisfy { $0 > 0 && $0 < 0.01 }, "\(together)")
        var contended = calibration(rate: 1e14)
        contended.contention = 1e6
        let excused = DriftProbe(calibration: contended, model: model, sequence: 64).speedsTogether(cores: 2)
        XCTAssertTrue(excused.allSatisfy { $0 > 1 }, "a calibration that expected busy cores a million times slower: \(excused)")
        // Real training steps against calibrate's best on each core: a reference of 1 µs a step
        // says this machine is far slower now, one of 100 s far faster; no reference, no step probe.
        var stepped = calibration(rate: 1e9)
        stepped.coreSteps = KernelCalibration.CoreSteps(alone: [1e-6, 1e-6], together: [100, 100])
        var probe = DriftProbe(calibration: stepped, model: model, sequence: 64)
        XCTAssertNil(probe.stepSpeeds(cores: 2, together: true), "no batch to step at")
        probe.stepBatch = 1
        let alone = try XCTUnwrap(probe.stepSpeeds(cores: 2, together: false, rounds: 1))
        XCTAssertTrue(alone.count == 2 && alone.allSatisfy { $0 < 0.01 }, "\(alone)")
        let busy = try XCTUnwrap(probe.stepSpeeds(cores: 2, together: true, rounds: 1))
        XCTAssertTrue(busy.count == 2 && busy.allSatisfy { $0 > 100 }, "\(busy)")
        XCTAssertNil(probe.stepSpeeds(cores: 3, together: true), "a reference for two cores does not describe three")
    }
}
