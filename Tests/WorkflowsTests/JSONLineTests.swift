import Foundation
import XCTest
import Workflows

/// fleet's hand-ordered JSON lines must parse as JSON whatever a string holds, and the step
/// keys must read logs in seconds and logs from before (milliseconds) alike.
final class JSONLineTests: XCTestCase {
    func testEveryStringRoundTrips() throws {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é ✓"
        let line = JSONLine.encode([("s", awkward), ("ranks", [3, 1]), ("x", Double.nan), ("n", 7), ("rows", [[1, 2], [], [3]])])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(object["s"] as? String, awkward)
        XCTAssertEqual(object["ranks"] as? [Int], [3, 1])
        XCTAssertTrue(object["x"] is NSNull)
        XCTAssertEqual(object["n"] as? Int, 7)
        XCTAssertEqual(object["rows"] as? [[Int]], [[1, 2], [], [3]])
    }

    func testStepKeysReadSecondsAndLegacyMilliseconds() {
        XCTAssertEqual(StepKey.seconds(["step_s": 0.25], StepKey.step), 0.25)
        XCTAssertEqual(StepKey.seconds(["step_ms": 250.0], StepKey.step), 0.25)
        XCTAssertEqual(StepKey.seconds(["tp_ms": 5.0], StepKey.tensorParallel), 0.005)
        XCTAssertNil(StepKey.seconds(["loss": 1.0], StepKey.compute))
    }
}
