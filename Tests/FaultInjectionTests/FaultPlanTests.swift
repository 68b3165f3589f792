import Collectives
import FaultInjection
import XCTest

final class FaultPlanTests: XCTestCase {
    func testSpecsParseIntoFaults() throws {
        let plan = try FaultPlan.parse(["crash:rank=1,step=30", "slow:rank=2,factor=3,steps=10-20", "nan:rank=0,step=7,target=gradient",
                                        "checkpoint:rank=0,step=20,mode=torn", "delay:rank=3,ms=50,steps=5-8,phase=forward"], worldSize: 4)
        XCTAssertEqual(plan.faults.map(\.description), [
            "crash on rank 1 at step 30", "slow on rank 2 at step 10-20, 3.0× slower", "nan on rank 0 at step 7, in a gradient",
            "checkpoint on rank 0 at step 20, torn write", "delay on rank 3 at step 5-8 (forward), +50 ms per send",
        ])
        XCTAssertTrue(plan.faults[1].acts(at: 15, phase: .backward))
        XCTAssertFalse(plan.faults[4].acts(at: 6, phase: .backward))
    }

    func testBadSpecsSayWhatIsWrong() {
        func message(_ spec: String) -> String {
            do { _ = try FaultPlan.parse([spec], worldSize: 4); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("explode:rank=1,step=3").contains("unknown fault kind 'explode'"))
        XCTAssertTrue(message("crash:step=3").contains("rank=R is required"))
        XCTAssertTrue(message("crash:rank=9,step=3").contains("rank 9 does not exist in a world of 4 ranks"))
        XCTAssertTrue(message("crash:rank=1").contains("step=S or steps=A-B is required"))
        XCTAssertTrue(message("slow:rank=1,step=2,factor=0.5").contains("factor must be a number ≥ 1"))
        XCTAssertTrue(message("crash:rank=1,step=2,when=now").contains("unknown key 'when'"))
    }

    func testRandomPlansRepeatForASeedAndFollowTheRate() {
        let a = FaultPlan.random(rate: 0.01, seed: 7, ranks: 64, steps: 1000), b = FaultPlan.random(rate: 0.01, seed: 7, ranks: 64, steps: 1000)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, FaultPlan.random(rate: 0.01, seed: 8, ranks: 64, steps: 1000))
        // 64 ranks × 1000 steps × 0.01 per step ≈ 640 faults.
        XCTAssertEqual(Double(a.faults.count), 640, accuracy: 80)
    }

    func testTheDecoratorDropsAndCorruptsOnlyWhatThePlanSays() throws {
        let plan = try FaultPlan.parse(["drop:rank=0,step=2", "corrupt:rank=0,step=3"])
        let results = LocalFabric.run(worldSize: 2, timeout: .milliseconds(300)) { transport -> [Float] in
            let faulty = FaultyTransport(transport, faults: plan.faults)
            var received: [Float] = []
            for step in 1...3 {
                faulty.step = step
                var value: [Float] = [Float(step)]
                if faulty.rank == 0 {
                    try value.withUnsafeBytes { try faulty.send($0, to: 1, tag: Int32(5 + step)) }
                } else {
                    do {
                        try value.withUnsafeMutableBytes { try faulty.recv(into: $0, from: 0, tag: Int32(5 + step)) }
                        received.append(value[0])
                    } catch { received.append(-1) }   // the dropped message times out, naming rank 0
                }
            }
            return received
        }
        let got = try results[1].get()
        XCTAssertEqual(got[0], 1)
        XCTAssertEqual(got[1], -1, "step 2's message was dropped")
        XCTAssertNotEqual(got[2], 3, "step 3's message arrived corrupted")
    }
}
