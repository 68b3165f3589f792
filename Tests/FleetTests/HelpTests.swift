import XCTest

/// Every command's help must show its defaults the way a user types them.
final class HelpTests: XCTestCase {
    func testHelpShowsDefaultsAsArguments() throws {
        let commands = ["train", "generate", "plan", "simulate", "calibrate", "compare", "diff", "checkpoint inspect",
                        "checkpoint verify", "supervise", "chaos", "bench collectives", "bench train", "bench checkpoint",
                        "bench simulate", "lab list", "lab show", "lab run", "lab check"]
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

    /// docs/cli.md is the binary's own help (regenerate with scripts/cli-reference.sh).
    func testTheCLIReferenceIsCurrent() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let reference = try String(contentsOf: root.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        let sections = reference.components(separatedBy: "\n## fleet ").dropFirst()
        XCTAssertGreaterThanOrEqual(sections.count, 16)
        for section in sections {
            let command = String(section.prefix { $0 != "\n" })
            let parts = section.components(separatedBy: "```")
            XCTAssertGreaterThanOrEqual(parts.count, 2, command)
            let documented = parts[1].trimmingCharacters(in: .newlines)
            let outcome = try FleetProcess.fleet(["help"] + command.split(separator: " ").map(String.init))
            XCTAssertEqual(outcome.status, 0, "\(command): \(outcome.output)")
            let help = outcome.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.replacingOccurrences(of: #"\s+$"#, with: "", options: .regularExpression) }
                .joined(separator: "\n").trimmingCharacters(in: .newlines)
            XCTAssertEqual(documented, help, "docs/cli.md is stale for fleet \(command): run scripts/cli-reference.sh")
        }
    }
}
