import XCTest
import Engine
import Parallelism
import Workload

/// A calibrated CPU whose cores compute at different speeds (calibrate's `core_speeds`): each
/// pinned rank is priced at its own core's speed, and a synchronous step follows the slowest.
final class PinnedCoresTests: XCTestCase {
    let model = ModelCatalog.gptTiny

    func yaml(speeds: String? = "[1.25, 0.8]", pinned: Bool = true, layout: String = "{dp: 2}") -> String {
        """
        cluster:
          device:
            name: local
            cores: 2
            pinned: \(pinned)
        \(speeds.map { "    core_speeds: \($0)\n" } ?? "")    gemm:
              - {m: 64, n: 64, k: 64, trans: none, rate: 50 GFLOP/s}
            kernels: {\(ElementKernel.allCases.map { "\($0.rawValue): 0.5 ns" }.joined(separator: ", "))}
          nodes: 1
          gpus_per_node: 2
          scale_up: {bandwidth: 2 GB/s, latency: 20 us}
        fabric: {topology: single-switch, link: {bandwidth: 2 GB/s, latency: 20 us}}
        workload: {model: gpt-tiny, batch: 8}
        layout: \(layout)
        """
    }

    func scenario(_ layout: ParallelLayout, speeds: String? = "[1.25, 0.8]", pinned: Bool = true) throws -> Scenario {
        var s = try ScenarioReader(path: "c.yaml", text: yaml(speeds: speeds, pinned: pinned)).read().base
        s.layout = layout
        s.gpusPerNode = layout.worldSize
        return s
    }

    func testEachRankComputesAtItsCoresSpeedAndTheSlowestSetsTheStep() throws {
        let uniform = try scenario(ParallelLayout(), speeds: nil)
        XCTAssertTrue(uniform.asymmetry.isEmpty)
        // dp1 on core 0: 1.25 × as fast as the kernels were measured (their mean core).
        let one = try scenario(ParallelLayout())
        XCTAssertEqual(one.asymmetry.cores?.speeds, [1.25, 0.8])
        XCTAssertEqual(StepSimulator(scenario: one).run().stepTime.seconds, StepSimulator(scenario: uniform).run().stepTime.seconds / 1.25,
                       accuracy: 1e-6 * StepSimulator(scenario: uniform).run().stepTime.seconds)
        // dp2: rank 1 on core 1 computes 1.25 × slower, and the data-parallel sum waits for it.
        let two = try scenario(ParallelLayout(dp: 2))
        let uniformTwo = StepSimulator(scenario: try scenario(ParallelLayout(dp: 2), speeds: nil)).run()
        let report = StepSimulator(scenario: two).run()
        XCTAssertEqual(report.breakdown.compute.seconds, uniformTwo.breakdown.compute.seconds / 0.8, accuracy: 1e-9)
        XCTAssertEqual(report.slowestRank, 1)
        XCTAssertTrue(report.criticalPath?.contains("computes 1.25× slower") ?? false, report.criticalPath ?? "no critical path")
        let delays = Dictionary(uniqueKeysWithValues: report.elementDelays.map { ($0.element, $0.delay.seconds) })
        XCTAssertGreaterThan(delays["ranks on core 1 compute at 0.800× the cores' mean"] ?? 0, 0, "\(delays)")
        XCTAssertEqual(delays["ranks on core 0 compute at 1.250× the cores' mean"], 0, "a faster core delays no one")
        // tp2 meets at every layer: its pair computes at the slower core's pace too.
        let tp = StepSimulator(scenario: try scenario(ParallelLayout(tp: 2))).run().breakdown.compute.seconds
        XCTAssertEqual(tp, StepSimulator(scenario: try scenario(ParallelLayout(tp: 2), speeds: nil)).run().breakdown.compute.seconds / 0.8, accuracy: 1e-9)
        // The time alone (what compare's draws ask for) is the full report's, without the per-element runs.
        for s in [two, try scenario(ParallelLayout(tp: 2)), try scenario(ParallelLayout(dp: 2), speeds: nil)] {
            XCTAssertEqual(StepSimulator(scenario: s).stepTime(), StepSimulator(scenario: s).run().stepTime)
        }
    }

    func testRanksMapToCoresRoundRobinPerNodeOrOverTheWorldOnTestHosts() throws {
        var s = try scenario(ParallelLayout(dp: 8))
        (s.nodes, s.gpusPerNode) = (2, 4)
        let cores = try XCTUnwrap(s.asymmetry.cores)
        XCTAssertEqual((0..<8).map { cores.core(of: $0, gpusPerNode: 4) }, [0, 1, 0, 1, 0, 1, 0, 1])
        XCTAssertEqual(s.slowdown(of: 5), 1 / 0.8, accuracy: 1e-12)
        // Three cores, four ranks a node: a node's rank 3 is back on core 0; on test hosts the
        // world's rank 4 (node 1's first) is on core 1.
        let perNode = Asymmetry.PinnedCores(speeds: [1, 1, 0.9]), shared = Asymmetry.PinnedCores(speeds: [1, 1, 0.9], sharedByNodes: true)
        XCTAssertEqual((0..<8).map { perNode.core(of: $0, gpusPerNode: 4) }, [0, 1, 2, 0, 0, 1, 2, 0])
        XCTAssertEqual((0..<8).map { shared.core(of: $0, gpusPerNode: 4) }, [0, 1, 2, 0, 1, 2, 0, 1])
    }

    func testReaderTakesCoreSpeedsOnlyForPinnedRanksAndNamesABadList() throws {
        XCTAssertNil(try scenario(ParallelLayout(dp: 2), pinned: false).asymmetry.cores, "ranks that roam the cores have no core of their own")
        XCTAssertEqual(try scenario(ParallelLayout(dp: 2), pinned: false).device.calibration?.coreSpeeds, [1.25, 0.8])
        // Each core's best step alone and together (ms), the drift probe's reference.
        let stepped = yaml().replacingOccurrences(of: "    core_speeds:", with: "    core_step_ms: {alone: [60, 61.5], together: [62, 64]}\n    core_speeds:")
        let steps = try XCTUnwrap(try ScenarioReader(path: "c.yaml", text: stepped).read().base.device.calibration?.coreSteps)
        XCTAssertEqual(steps.alone, [0.06, 0.0615])
        XCTAssertEqual(steps.together, [0.062, 0.064])
        XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: stepped.replacingOccurrences(of: "together: [62, 64]", with: "together: [62]")).read()) { error in
            XCTAssertTrue("\(error)".contains("core_step_ms.together has 1 time(s) for 2 core(s)"), "\(error)")
        }
        for (bad, says) in [("[1.0]", "has 1 speed(s) for 2 core(s)"), ("[1.0, 0]", "core_speeds must be positive numbers"), ("fast", "must be a list of numbers")] {
            XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: yaml(speeds: bad)).read(), bad) { error in
                XCTAssertTrue("\(error)".contains(says), "\(error)")
            }
        }
    }
}
