import Parallelism
import Workflows
import Workload
import XCTest

/// calibrate's contention figures: each round's mean slowdown of a core with every core busy,
/// each core's speed alone against the mean — from the block times, and from a real (short) run.
final class CoreContentionTests: XCTestCase {
    func testSlowdownsAndSpeedsComeFromTheBlockTimes() {
        var result = CoreContention.Result()
        result.alone = [[1.0, 2.0], [1.0, 2.0], [1.2, 2.0]]
        result.together = [[1.5, 2.0], [1.0, 3.0], [1.2, 2.0]]
        for (value, expected) in zip(result.slowdowns, [1.25, 1.25, 1.0]) { XCTAssertEqual(value, expected, accuracy: 1e-12) }
        // Best times: alone 1.0 and 2.0, together 1.0 and 2.0: no contention, whatever the rounds' own ratios.
        XCTAssertEqual(result.contention, 1, accuracy: 1e-12)
        result.together = [[1.5, 3.0], [1.2, 2.6], [1.3, 2.8]]
        XCTAssertEqual(result.contention, (1.2 / 1.0 + 2.6 / 2.0) / 2, accuracy: 1e-12)
        // Best times alone: 1.0 and 2.0 s (medians 1.2 and 2.2); mean 1.5: the first core 1.5 × the mean speed, the second 0.75 ×.
        result.alone = [[1.0, 2.2], [1.4, 2.0], [1.2, 2.4]]
        XCTAssertEqual(result.speeds.count, 2)
        for (value, expected) in zip(result.speeds, [1.5, 0.75]) { XCTAssertEqual(value, expected, accuracy: 1e-12) }
    }

    func testAShortRunTimesEveryCoreAloneAndTogether() {
        let shape = GEMMShape(m: 64, n: 64, k: 64)
        let contention = CoreContention(shapes: [shape], rates: { _ in 20e9 }, rounds: 2, cores: 2, blockSeconds: 0.002)
        XCTAssertGreaterThanOrEqual(contention.shapes[0].calls, 1)
        let result = contention.measure()
        XCTAssertEqual(result.alone.count, 2)
        XCTAssertEqual(result.together.map(\.count), [2, 2])
        XCTAssertTrue(result.alone.joined().allSatisfy { $0 > 0 } && result.together.joined().allSatisfy { $0 > 0 }, "\(result)")
        XCTAssertEqual(CoreContention(shapes: [shape], rates: { _ in 20e9 }, rounds: 2, cores: 1).measure().alone.count, 0, "one core: nothing to contend for")
    }

    /// calibrate's block: a real training step's forward and backward on each core alone and
    /// on both at once, each thread with a trainer of its own.
    func testTrainingStepBlocksAreTimedAloneAndTogether() {
        var contention = CoreContention(shapes: [], rates: { _ in 1e9 }, rounds: 1, cores: 2)
        contention.steps = (ModelCatalog.gptTiny, 1)
        let result = contention.measure()
        XCTAssertEqual(result.alone.map(\.count), [2])
        XCTAssertEqual(result.together.map(\.count), [2])
        // A step of gpt-tiny at batch 1 on one core: milliseconds, not nothing and not seconds.
        XCTAssertTrue(result.alone.joined().allSatisfy { $0 > 1e-3 && $0 < 5 } && result.together.joined().allSatisfy { $0 > 1e-3 && $0 < 5 }, "\(result)")
        XCTAssertTrue(result.contention.isFinite && result.contention > 0.5, "\(result.contention)")
    }
}
