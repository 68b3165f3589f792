import Collectives
import Parallelism
import Workflows
import XCTest

/// `fleet chaos --network-faults`: which network faults a campaign draws (cut links, dropped
/// packets, rate-limited links), within their stated ranges, the same for the same seed, and
/// the commands that make and undo each inside a test host.
final class NetworkFaultPlanTests: XCTestCase {
    func campaign(seed: UInt64, kinds: [String] = ChaosCampaign.networkKinds) throws -> ChaosCampaign {
        var campaign = try ChaosCampaign(model: "gpt-tiny", layouts: [ParallelLayout(dp: 2)], steps: 10, seed: seed, kinds: [.crash], directory: "/tmp/unused")
        campaign.hosts = try LaunchHosts(list: "198.18.0.1:1,198.18.0.2:1")
        campaign.networkFaults = true
        campaign.networkKinds = kinds
        return campaign
    }

    func testEveryKindIsDrawnWithinItsRangesAndTheSameForTheSameSeed() throws {
        var seen = Set<String>()
        for seed in UInt64(1)...40 {
            let plans = try campaign(seed: seed).plans(6)
            XCTAssertEqual(plans.map(\.spec), try campaign(seed: seed).plans(6).map(\.spec), "reproducible")
            for plan in plans {
                let fault = try XCTUnwrap(plan.link)
                XCTAssertNil(plan.kind, "no injected fault beside a network fault")
                XCTAssertTrue(["198.18.0.1", "198.18.0.2"].contains(fault.host))
                XCTAssertTrue((3...7).contains(fault.step), "from step 3, before the last steps: \(fault.step)")
                switch fault.kind {
                case .down: XCTAssertTrue((2...8).contains(fault.seconds))
                case let .loss(percent):
                    XCTAssertTrue([20, 30, 40, 50].contains(percent))
                    XCTAssertTrue((3...6).contains(fault.seconds))
                case let .slow(mbit):
                    XCTAssertTrue([10, 20, 50].contains(mbit))
                    XCTAssertTrue((3...6).contains(fault.seconds))
                case let .delay(ms):
                    XCTAssertTrue([20, 100, 500, 5000].contains(ms))
                    XCTAssertTrue((3...6).contains(fault.seconds))
                }
                XCTAssertEqual(plan.spec, fault.description)
                seen.insert(fault.kindName)
            }
        }
        XCTAssertEqual(seen, Set(ChaosCampaign.networkKinds))
        // Seed 3 draws every kind within four runs, the delay past the runs' deadline (the multi-host test relies on it).
        let three = try campaign(seed: 3).plans(4)
        XCTAssertEqual(Set(three.compactMap { $0.link?.kindName }), Set(ChaosCampaign.networkKinds))
        XCTAssertEqual(three.last?.link?.kind, .delay(ms: 5000))
        // Only the kinds asked for.
        XCTAssertTrue(try campaign(seed: 3, kinds: ["loss"]).plans(10).allSatisfy { $0.link?.kindName == "loss" })
    }

    func testEachFaultIsMadeAndUndoneInsideTheHost() {
        XCTAssertEqual(LinkFault(host: "h", step: 3, seconds: 2).description, "link:host=h,step=3,down=2s")
        XCTAssertEqual(LinkFault(host: "h", kind: .loss(percent: 30), step: 4, seconds: 5).description, "loss:host=h,step=4,drop=30%,for=5s")
        XCTAssertEqual(LinkFault(host: "h", kind: .slow(mbit: 20), step: 4, seconds: 5).description, "slow-link:host=h,step=4,rate=20mbit,for=5s")
        XCTAssertEqual(LinkFault(host: "h", kind: .delay(ms: 100), step: 4, seconds: 3).description, "delay:host=h,step=4,added=100ms,for=3s")
    }
}
