import Engine
import XCTest

/// The reliability simulator held to closed forms: cluster MTBF, Young–Daly, and goodput
/// without failures; and to itself (seeds).
final class ReliabilityTests: XCTestCase {
    private func model(mtbf: Double, duration: Double, interval: Double, write: Double) -> ReliabilityModel {
        // Two kinds whose rates add up to 1/mtbf.
        var m = ReliabilityModel(components: [.init(name: "gpu", count: 1000, mttf: 1000 * mtbf * 2), .init(name: "host", count: 10, mttf: 10 * mtbf * 2)],
                                 duration: duration, checkpointInterval: interval, checkpointWrite: write, reload: 0)
        m.detection = 0
        m.rescheduling = 0
        m.repair = 0
        return m
    }

    func testClusterMTBFMatchesTheSumOfComponentRates() {
        let m = model(mtbf: 3600, duration: 3600 * 20_000, interval: 1e9, write: 0)
        XCTAssertEqual(m.clusterMTBF, 3600, accuracy: 1e-6)
        let report = m.simulate()
        XCTAssertEqual(Double(report.failures), 20_000, accuracy: 20_000 * 0.03, "failures over 20,000 MTBFs")
        XCTAssertEqual(Double(report.failuresByComponent["gpu"]!) / Double(report.failures), 0.5, accuracy: 0.02)
    }

    func testWeibullLifetimesHaveTheGivenMean() {
        for shape in [0.7, 1.5] {
            var m = ReliabilityModel(components: [.init(name: "switch", count: 200, mttf: 10_000, distribution: .weibull(shape: shape))],
                                     duration: 10_000 * 100, checkpointInterval: 1e12, checkpointWrite: 0, reload: 0)
            m.detection = 0; m.rescheduling = 0; m.repair = 0
            // A renewal process: 200 units × 100 mean lifetimes.
            XCTAssertEqual(Double(m.simulate().failures), 20_000, accuracy: 20_000 * 0.05, "shape \(shape)")
        }
    }

    func testWithoutFailuresGoodputIsOneMinusCheckpointOverhead() {
        let interval = 1800.0, write = 60.0
        var m = ReliabilityModel(components: [], duration: (interval + write) * 100, checkpointInterval: interval, checkpointWrite: write, reload: 0)
        XCTAssertEqual(m.simulate().goodput, interval / (interval + write), accuracy: 1e-9)
        m.checkpointing = .async
        m.snapshotStall = 5
        m.duration = (interval + 5) * 100
        XCTAssertEqual(m.simulate().goodput, interval / (interval + 5), accuracy: 1e-9)
    }

    func testTheSimulatedOptimumIntervalLandsNearYoungDaly() {
        let mtbf = 36_000.0, write = 60.0
        let base = model(mtbf: mtbf, duration: mtbf * 20_000, interval: 1, write: write)
        let youngDaly = base.youngDalyInterval
        XCTAssertEqual(youngDaly, (2 * write * mtbf).squareRoot(), accuracy: 1e-9)
        let intervals = stride(from: 0.5, through: 1.8, by: 0.05).map { $0 * youngDaly }
        let (_, best) = base.sweep(intervals: intervals)
        XCTAssertLessThanOrEqual(abs(best.interval - youngDaly) / youngDaly, 0.10, "optimum \(best.interval) s vs Young–Daly \(youngDaly) s")
    }

    func testSeedsRepeatAndAsyncOrInMemoryCheckpointsCostLess() {
        var m = model(mtbf: 3600, duration: 3600 * 500, interval: 900, write: 120)
        m.detection = 60
        m.rescheduling = 300
        m.reload = 120
        let a = m.simulate(), b = m.simulate()
        XCTAssertEqual(a.useful, b.useful)
        XCTAssertEqual(a.failures, b.failures)
        var other = m
        other.seed = 2
        XCTAssertNotEqual(other.simulate().useful, a.useful)
        var async = m
        async.checkpointing = .async
        async.snapshotStall = 5
        XCTAssertGreaterThan(async.simulate().goodput, a.goodput)
        var memory = async
        memory.checkpointing = .inMemory
        memory.reload = 5
        XCTAssertGreaterThan(memory.simulate().goodput, async.simulate().goodput)
    }
}
