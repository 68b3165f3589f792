import Engine
import Parallelism
import Workflows
import Workload
import XCTest

/// `fleet calibrate --hosts` and `fleet compare --hosts`: a calibration across hosts becomes a
/// scenario with one node per host (the link inside a host, the network between hosts), and
/// compare spreads each layout's real ranks over the hosts as the simulation spreads them.
final class CalibrationAcrossHostsTests: XCTestCase {
    func figures(ranks: Int = 2, hosts: Int, machines: Int = 1, path: String, alpha: Double, beta: Double, meeting: Double = 1e-3) -> TransportFigures {
        var f = TransportFigures(transport: "zmq", ranks: ranks)
        f.loadedMeeting = Measurement([meeting])
        f.hosts = hosts
        f.machines = machines
        f.path = path
        f.alpha = alpha
        f.beta = beta
        return f
    }

    func result(machines: Int) -> CalibrationResult {
        var result = CalibrationResult(model: ModelCatalog.gptTiny, batch: 8, sequence: 128, cores: 2, repeats: 3)
        result.gemm = [GEMMShape(m: 64, n: 64, k: 64): Measurement([50e9, 51e9, 49e9])]
        result.kernels = [.residual: Measurement([1e-9, 1e-9, 1e-9])]
        result.memoryBandwidth = Measurement([10e9])
        result.storageBandwidth = Measurement([1e9])
        result.storageLatency = Measurement([1e-3])
        result.hosts = ["198.18.0.1", "198.18.0.2"]
        result.transports = [figures(hosts: 1, path: "shm", alpha: 1e-6, beta: 10e9),
                             figures(ranks: 4, hosts: 1, path: "shm", alpha: 2e-6, beta: 11e9),
                             figures(hosts: 2, machines: machines, path: "tcp", alpha: 40e-6, beta: 0.7e9, meeting: 2e-3)]
        return result
    }

    func read(_ result: CalibrationResult) throws -> Scenario {
        try ScenarioReader(path: "two-hosts.yaml", text: result.yaml()).read().base
    }

    func testOneNodePerHostWithTheLinkInsideAHostAndTheNetworkBetween() throws {
        let s = try read(result(machines: 1))
        XCTAssertEqual(s.nodes, 2)
        XCTAssertEqual(s.scaleUp.bandwidth.bytesPerSecond, 10e9, accuracy: 1e6, "inside a host: the shared-memory figures")
        XCTAssertEqual(s.scaleUp.latency.seconds, 1e-6, accuracy: 1e-8)
        XCTAssertEqual(s.scaleOut.bandwidth.bytesPerSecond, 0.7e9, accuracy: 1e6, "between hosts: the TCP figures")
        XCTAssertEqual(s.scaleOut.latency.seconds, 40e-6, accuracy: 1e-8)
        XCTAssertEqual(s.device.calibration?.coresSharedByNodes, true, "test hosts: one machine's namespaces share its cores")
        XCTAssertEqual(s.device.calibration?.transport, "zmq", "whose links and waits these are")
        XCTAssertThrowsError(try ScenarioReader(path: "t.yaml", text: result(machines: 1).yaml().replacingOccurrences(of: "transport: zmq", with: "transport: udp")).read()) {
            XCTAssertTrue("\($0)".contains("cluster.device.transport must be mpi or zmq"), "\($0)")
        }
        // Meetings wait as measured where they happen: inside a host, and between hosts.
        let inside = try XCTUnwrap(result(machines: 1).transports[0].meetingWait), between = try XCTUnwrap(result(machines: 1).transports[2].meetingWait)
        XCTAssertEqual(try XCTUnwrap(s.device.calibration?.meetingWait), inside, accuracy: 1e-7)
        XCTAssertEqual(try XCTUnwrap(s.device.calibration?.networkMeetingWait), between, accuracy: 1e-7)
        XCTAssertGreaterThan(between, inside)
        XCTAssertTrue(result(machines: 1).yaml().contains("198.18.0.1, 198.18.0.2"))
        // Hosts that are machines of their own keep their own cores.
        let apart = try read(result(machines: 2))
        XCTAssertEqual(apart.device.calibration?.coresSharedByNodes, false)
        XCTAssertFalse(result(machines: 2).yaml().contains("cores_shared_by_nodes"))
        // Each core's measured speed comes back as the scenario's pinned cores (on test hosts, over the world's ranks).
        var timed = result(machines: 1)
        (timed.contention, timed.coreSpeeds) = (1.01, [1.02, 0.98])
        timed.coreSteps = KernelCalibration.CoreSteps(alone: [0.0601, 0.0612], together: [0.0623, 0.0634])
        let steps = try XCTUnwrap(try read(timed).device.calibration?.coreSteps, "the drift probe's reference")
        for (read, written) in zip(steps.alone + steps.together, [0.0601, 0.0612, 0.0623, 0.0634]) { XCTAssertEqual(read, written, accuracy: 1e-9) }
        XCTAssertEqual(try read(timed).asymmetry.cores, Asymmetry.PinnedCores(speeds: [1.02, 0.98], sharedByNodes: true))
        XCTAssertNil(s.asymmetry.cores, "no speeds measured: every core alike")
        // Without --hosts: one node, the same link everywhere (as before).
        var local = result(machines: 1)
        local.hosts = []
        local.transports.removeLast()
        let one = try read(local)
        XCTAssertEqual(one.nodes, 1)
        XCTAssertEqual(one.scaleOut.bandwidth.bytesPerSecond, one.scaleUp.bandwidth.bytesPerSecond)
    }

    func testCompareSpreadsEachLayoutsRanksAsTheSimulationDoes() throws {
        let base = try read(result(machines: 1))
        var comparison = Comparison(model: ModelCatalog.gptTiny, batch: 8, steps: 10, warmup: 2, base: base, transport: "zmq")
        XCTAssertNil(comparison.placement(ParallelLayout(dp: 2)), "no hosts: this machine")
        comparison.hosts = ["198.18.0.1", "198.18.0.2"]
        XCTAssertEqual(comparison.placement(ParallelLayout()), "198.18.0.1:1", "one rank: the first host")
        XCTAssertEqual(comparison.placement(ParallelLayout(dp: 2)), "198.18.0.1:1,198.18.0.2:1")
        XCTAssertEqual(comparison.placement(ParallelLayout(dp: 2, pp: 2, microbatches: 4)), "198.18.0.1:2,198.18.0.2:2")
        // The simulation puts the same ranks on the same nodes: dp2 across the hosts pays the
        // network between them, dp2 on one host (a one-node calibration) the link inside it.
        let across = try comparison.simulate(ParallelLayout(dp: 2))
        var oneNode = base
        oneNode.nodes = 1
        let inside = try Comparison(model: ModelCatalog.gptTiny, batch: 8, steps: 10, warmup: 2, base: oneNode, transport: "zmq").simulate(ParallelLayout(dp: 2))
        XCTAssertGreaterThan(across.simulated.stepTime, inside.simulated.stepTime, "TCP between hosts is slower than shared memory inside one")
        // --dp-algo hierarchical: dp4 on two hosts sends a quarter of each bucket across them
        // instead of the ring's one and a half: less data-parallel time, the compute the same.
        let ring = try comparison.simulate(ParallelLayout(dp: 4))
        comparison.dataParallelAlgorithm = .hierarchical
        let hierarchical = try comparison.simulate(ParallelLayout(dp: 4))
        XCTAssertLessThan(hierarchical.simulatedCommunication, ring.simulatedCommunication)
        XCTAssertEqual(hierarchical.simulatedCompute, ring.simulatedCompute, accuracy: 1e-12)
    }
}
