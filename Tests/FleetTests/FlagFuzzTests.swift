import Foundation
import XCTest
import Engine
@testable import Fleet

/// Seeded mutations of every subcommand's command line, parsed and checked in-process as
/// `fleet` does before any work (ArgumentParser, each command's validate(), and train's and
/// plan's checks of the model, layout and batch): each case is accepted or refused with a
/// clear message — never a crash, a hang or a Foundation error dump. `FLEET_FUZZ_CASES`
/// (default 10,000) and `FLEET_FUZZ_SEED` choose the run.
final class FlagFuzzTests: XCTestCase {
    struct Command {
        let path: [String]
        let options: [(name: String, takesValue: Bool)]
        let positionals: Int
    }

    func testMutatedCommandLinesAreAcceptedOrRefusedInOneLine() throws {
        let environment = ProcessInfo.processInfo.environment
        let cases = environment["FLEET_FUZZ_CASES"].flatMap(Int.init) ?? 10_000
        var random = SplitMix64(seed: environment["FLEET_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261203)
        let commands = try Self.commands()
        XCTAssertGreaterThanOrEqual(commands.count, 18)
        var refused = 0, accepted = 0, findings: [String] = []
        for index in 0..<cases where findings.count < 5 {
            let command = commands[random.below(commands.count)]
            let arguments = Self.mutatedLine(command, &random)
            do {
                let parsed = try Fleet.parseAsRoot(arguments)
                if let train = parsed as? Train { _ = try train.preflight() }
                if let plan = parsed as? Plan { _ = try plan.preflight() }
                accepted += 1
            } catch {
                refused += 1
                let message = Fleet.fullMessage(for: error)
                let code = Fleet.exitCode(for: error).rawValue
                let dump = ["Error Domain", "NSCocoaErrorDomain", "Optional(", "Swift.", "Foundation."].first { message.contains($0) }
                if message.isEmpty && code != 0 { findings.append("case \(index) `fleet \(arguments.joined(separator: " "))`: exit \(code) with no message") }
                if let dump { findings.append("case \(index) `fleet \(arguments.joined(separator: " "))`: a raw dump (\(dump)): \(message)") }
            }
        }
        XCTAssertEqual(findings, [])
        // Both outcomes occur: the mutations reach the commands' own checks, not only the parser.
        XCTAssertGreaterThan(accepted, cases / 20, "accepted \(accepted), refused \(refused)")
        XCTAssertGreaterThan(refused, cases / 4, "accepted \(accepted), refused \(refused)")
    }

    /// Every runnable subcommand with its options, from the binary's own help dump.
    static func commands() throws -> [Command] {
        let dump = try FleetProcess.fleet(["--experimental-dump-help"])
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(dump.stdoutBytes)) as? [String: Any])
        var found: [Command] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            let subcommands = command["subcommands"] as? [[String: Any]] ?? []
            // The hidden worker role and help run nothing a user types; supervise's command follows "--".
            if subcommands.isEmpty && !["worker", "help", "supervise"].contains(path.last ?? "") {
                let arguments = command["arguments"] as? [[String: Any]] ?? []
                let options = arguments.compactMap { argument -> (String, Bool)? in
                    guard let kind = argument["kind"] as? String, kind != "positional",
                          let name = (argument["names"] as? [[String: Any]])?.first(where: { $0["kind"] as? String == "long" })?["name"] as? String,
                          name != "help" else { return nil }
                    return (name, kind == "option")
                }
                found.append(Command(path: path, options: options, positionals: arguments.filter { $0["kind"] as? String == "positional" }.count))
            }
            for sub in subcommands { walk(sub, path + [sub["commandName"] as? String ?? "?"]) }
        }
        walk(try XCTUnwrap(root["command"] as? [String: Any]), [])
        return found
    }

    static let values = ["0", "-1", "-5", "1", "2", "3", "7", "1000000", "9223372036854775807", "99999999999999999999", "1e308", "1e-300",
                         "nan", "inf", "-inf", "0.5", "1.5", "", "abc", "-", "--", "gpt-tiny", "llama-405b", "dp2pp2", "ring,native",
                         "4KiB:64MiB", "0B", "-3MiB", "1PB", "crash:rank=1,step=2", "bogus:x", "/nonexistent/dir/file", "/dev/null/x",
                         "/tmp", ".", "ipc", "tcp", "zmq", "mpi", "local", "gpipe", "1f1b", "interleaved"]

    static func mutatedLine(_ command: Command, _ random: inout SplitMix64) -> [String] {
        var line = command.path
        for _ in 0..<command.positionals where random.below(3) > 0 { line.append(values[random.below(values.count)]) }
        for _ in 0..<(1 + random.below(4)) {
            switch random.below(12) {
            case 0: line.append("--bogus-flag")
            case 1: if let option = command.options.randomElement(using: &random) { line.append("--" + option.name) }   // a value may be missing
            default:
                guard let option = command.options.randomElement(using: &random) else { continue }
                line.append("--" + option.name)
                if option.takesValue { line.append(values[random.below(values.count)]) }
            }
        }
        return line
    }
}
