import Parallelism
import Workflows
import XCTest

/// Compact layout names, as `fleet compare`, `calibrate` and `chaos` take them: every layout
/// `fleet train` accepts, read and written back.
final class LayoutNameTests: XCTestCase {
    func testNamesReadAsTheLayoutsTrainRuns() throws {
        XCTAssertEqual(try LayoutName.parse("dp2pp2"), ParallelLayout(dp: 2, pp: 2, microbatches: 4))
        XCTAssertEqual(try LayoutName.parse("pp2v2"), ParallelLayout(pp: 2, microbatches: 4, schedule: .interleaved, virtualStages: 2))
        XCTAssertEqual(try LayoutName.parse("pp4m8gpipe"), ParallelLayout(pp: 4, microbatches: 8, schedule: .gpipe))
        XCTAssertEqual(try LayoutName.parse("dp2z1"), ParallelLayout(dp: 2, zeroStage: 1))
        XCTAssertEqual(try LayoutName.parse("tp2sp"), ParallelLayout(tp: 2, sequenceParallel: true))
        XCTAssertEqual(LayoutName.trainArguments(try LayoutName.parse("tp2pp2sp")).suffix(1), ["--sequence-parallel"])
        XCTAssertEqual(try LayoutName.parse("dp4ep2"), ParallelLayout(dp: 4, ep: 2))
        XCTAssertEqual(LayoutName.trainArguments(try LayoutName.parse("dp4ep2")).suffix(2), ["--ep", "2"])
        XCTAssertEqual(try LayoutName.parse("dp2cp2"), ParallelLayout(dp: 2, cp: 2))
        var balanced = ParallelLayout(dp: 4, cp: 2)
        balanced.contextBalanced = true
        XCTAssertEqual(try LayoutName.parse("dp4cp2lb"), balanced)
        XCTAssertEqual(LayoutName.trainArguments(balanced).suffix(3), ["--cp", "2", "--cp-balance"])
        for name in ["dp1", "dp2", "tp2", "dp2pp2", "pp2v2", "dp2pp2v2m2", "pp4m4gpipe", "dp2z1", "dp2tp2pp2m2z1", "tp2sp", "dp2tp2pp2z1sp", "dp4pp2ep2",
                     "dp2cp2", "dp4tp2cp2lb"] {
            XCTAssertEqual(LayoutName.name(try LayoutName.parse(name)), name, "round trip")
        }
        XCTAssertEqual(LayoutName.trainArguments(try LayoutName.parse("dp2pp2v2z1")),
                       ["--dp", "2", "--tp", "1", "--pp", "2", "--microbatches", "4", "--schedule", "interleaved", "--virtual-stages", "2", "--zero", "1"])
        for bad in ["", "dp", "xx2", "pp2v2gpipe", "m0", "dp2q1"] {
            XCTAssertThrowsError(try LayoutName.parse(bad), bad)
        }
    }
}
