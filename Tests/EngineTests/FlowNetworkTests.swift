import Engine
import XCTest

/// Flow-level sharing held to what must hold: nothing shared = analytical; an
/// oversubscribed uplink divides its rate; a permutation on a non-blocking tree runs at line rate.
final class FlowNetworkTests: XCTestCase {
    let link = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))

    private func fabric(radix: Int, oversubscription: Double, gpus: Int = 32, routing: Fabric.Routing = .destinationModK) -> Fabric {
        var f = Fabric(gpus: gpus, gpusPerNode: 1, topology: .fatTree(radix: radix, tiers: 2, oversubscription: oversubscription), scaleUp: link, scaleOut: link)
        f.routing = routing
        return f
    }

    func testWithoutContentionFlowLevelEqualsAnalytical() {
        let star = Fabric(gpus: 16, gpusPerNode: 1, topology: .singleSwitch, scaleUp: link, scaleOut: link)
        let group = Array(0..<16)
        for size in [1e3, 1e6, 1e8] {
            let flow = CollectiveModel(network: FlowNetwork(fabric: star)), analytical = CollectiveModel(network: AnalyticalNetwork(fabric: star))
            XCTAssertEqual(flow.allReduce(group, bytes: size).seconds, analytical.allReduce(group, bytes: size).seconds, accuracy: 1e-9)
            XCTAssertEqual(flow.pointToPoint(from: 0, to: 5, bytes: size), analytical.pointToPoint(from: 0, to: 5, bytes: size))
        }
    }

    func testAPermutationOnANonBlockingTreeRunsAtLineRate() {
        // Radix 8, 1:1: leaves of 4 GPUs with 4 uplinks; every GPU sends to its counterpart one leaf over.
        let f = fabric(radix: 8, oversubscription: 1)
        let messages = (0..<32).map { Message(from: $0, to: ($0 + 4) % 32, bytes: 1e8) }
        let lineRate = AnalyticalNetwork(fabric: f).time(messages)
        XCTAssertEqual(FlowNetwork(fabric: f).time(messages).seconds, lineRate.seconds, accuracy: lineRate.seconds * 1e-9)
    }

    func testTwoFlowsSharingALinkGetHalfEach() {
        let f = fabric(radix: 5, oversubscription: 4)   // 4 GPUs per leaf, one uplink
        let one = [Message(from: 0, to: 4, bytes: 1e8)], two = one + [Message(from: 1, to: 5, bytes: 1e8)]
        let flow = FlowNetwork(fabric: f)
        let alone = flow.time(one).seconds, shared = flow.time(two).seconds
        XCTAssertEqual(shared - 4e-6, 2 * (alone - 4e-6), accuracy: 1e-9, "two flows on one uplink take twice as long")
    }

    func testAllToAllAcrossAFourToOneOversubscribedTreeSlowsFourfold() {
        let group = Array(0..<32)
        let blocking = CollectiveModel(network: FlowNetwork(fabric: fabric(radix: 5, oversubscription: 4, routing: .ecmp)))
        let nonBlocking = CollectiveModel(network: FlowNetwork(fabric: fabric(radix: 8, oversubscription: 1)))
        let analytical = CollectiveModel(network: AnalyticalNetwork(fabric: fabric(radix: 5, oversubscription: 4)))
        let size = 32e7
        let ratio = blocking.allToAll(group, bytes: size).seconds / nonBlocking.allToAll(group, bytes: size).seconds
        XCTAssertGreaterThan(ratio, 3.3, "all-to-all on 4:1 vs 1:1: \(ratio)×")
        XCTAssertLessThan(ratio, 4.05, "all-to-all on 4:1 vs 1:1: \(ratio)×")
        XCTAssertEqual(analytical.allToAll(group, bytes: size), CollectiveModel(network: AnalyticalNetwork(fabric: fabric(radix: 8, oversubscription: 1))).allToAll(group, bytes: size),
                       "the analytical model cannot see oversubscription")
    }

    /// The reduction the simulator relies on: one ring step timed and repeated equals every step simulated.
    func testTimingOneRingStepEqualsSimulatingEveryStep() {
        let model = CollectiveModel(network: FlowNetwork(fabric: fabric(radix: 5, oversubscription: 4, routing: .ecmp)))
        let group = Array(0..<32)
        XCTAssertEqual(model.reduceScatter(group, bytes: 1e8), model.reduceScatter(group, bytes: 1e8, explicitSteps: true))
    }

    func testConcurrentGroupsShareOversubscribedLinks() {
        // Two rings over the same 8 leaves: GPUs 0, 4, 8, … and 1, 5, 9, …; each ring step crosses every leaf's uplink once per ring.
        let first = stride(from: 0, to: 32, by: 4).map { $0 }, second = first.map { $0 + 1 }
        let oversubscribed = CollectiveModel(network: FlowNetwork(fabric: fabric(radix: 5, oversubscription: 4)))
        let alone = oversubscribed.concurrentRingAllReduce([first], bytes: 1e8), together = oversubscribed.concurrentRingAllReduce([first, second], bytes: 1e8)
        XCTAssertEqual(together.seconds / alone.seconds, 2, accuracy: 0.03, "two rings share each leaf's single uplink (latency is not shared)")
        let nonBlocking = CollectiveModel(network: FlowNetwork(fabric: fabric(radix: 8, oversubscription: 1)))
        XCTAssertEqual(nonBlocking.concurrentRingAllReduce([first, second], bytes: 1e8), nonBlocking.concurrentRingAllReduce([first], bytes: 1e8))
        XCTAssertEqual(nonBlocking.concurrentRingAllReduce([first], bytes: 1e8), nonBlocking.allReduce(first, bytes: 1e8))
    }

    func testFlowsStartingLaterShareFromThenOn() {
        let f = fabric(radix: 5, oversubscription: 4)
        let network = FlowNetwork(fabric: f)
        let bytes = 1e8, rate = link.bandwidth.bytesPerSecond, latency = 4e-6
        let messages = [Message(from: 0, to: 4, bytes: bytes), Message(from: 1, to: 5, bytes: bytes)]
        // The second starts when the first is half done; they share the uplink from then on.
        let done = network.completions(messages, starts: [0, bytes / (2 * rate)]).messages
        XCTAssertEqual(done[0], 1.5 * bytes / rate + latency, accuracy: 1e-9)
        XCTAssertEqual(done[1], 2 * bytes / rate + latency, accuracy: 1e-9)
    }

    func testCheckpointWritesShareTheWritersNICs() {
        let star = Fabric(gpus: 4, gpusPerNode: 1, topology: .singleSwitch, scaleUp: link, scaleOut: link)
        var storage = StorageSystem(aggregate: .gigabytesPerSecond(1000), perClient: link.bandwidth, latency: SimTime(seconds: 1e-3))
        storage.sharedFabric = true
        let network = FlowNetwork(fabric: star, storage: storage)
        let message = [Message(from: 0, to: 1, bytes: 1e8)], write = [FlowNetwork.StorageWrite(from: 0, bytes: 1e11)]
        let alone = network.time(message).seconds, shared = network.time(message, alongside: write).seconds
        XCTAssertEqual(shared - 2e-6, 2 * (alone - 2e-6), accuracy: 1e-9, "the write takes half of the NIC while both run")
        XCTAssertEqual(network.completions([], writes: write).writes[0], 1e-3 + 1e11 / link.bandwidth.bytesPerSecond, accuracy: 1e-9)
        storage.sharedFabric = false
        XCTAssertEqual(FlowNetwork(fabric: star, storage: storage).time(message, alongside: write).seconds, alone, accuracy: 1e-12,
                       "a separate storage network leaves training traffic alone")
    }
}
