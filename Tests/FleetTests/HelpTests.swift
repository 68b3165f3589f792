import XCTest

/// Every command's help must show its defaults the way a user types them.
final class HelpTests: XCTestCase {
    func testHelpShowsDefaultsAsArguments() throws {
        let commands = ["train", "generate", "plan", "simulate", "calibrate", "compare", "diff", "checkpoint inspect",
                        "checkpoint verify", "supervise", "chaos", "bench collectives", "bench train", "bench checkpoint",
                        "bench simulate"]
        // A Swift value's description, such as `ModelSpec(name: "gpt-tiny", ...)`, is not an argument.
        let debugDescription = try NSRegularExpression(pattern: #"default: [A-Za-z.]+\("#)
        for command in commands {
            let outcome = try FleetProcess.fleet(command.split(separator: " ").map(String.init) + ["--help"])
            XCTAssertEqual(outcome.status, 0, "\(command): \(outcome.output)")
            XCTAssertTrue(outcome.stdout.contains("USAGE: fleet \(command)"), "\(command): \(outcome.output)")
            let text = outcome.stdout.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            let found = debugDescription.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
            XCTAssertNil(found, "\(command) --help shows a default as a Swift value: \(outcome.stdout)")
        }
    }
}
