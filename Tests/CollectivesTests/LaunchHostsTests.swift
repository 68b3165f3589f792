import Collectives
import Foundation
import XCTest

/// `--hosts` and `--hostfile`: where self-launched workers go, and how the agent's command is quoted.
final class LaunchHostsTests: XCTestCase {
    func testHostListsFillSlotsInOrder() throws {
        let hosts = try LaunchHosts(list: "a:2,b,c:3")
        XCTAssertEqual(try hosts.placement(ranks: 5), ["a", "a", "b", "c", "c"])
        XCTAssertEqual(try hosts.placement(ranks: 6).count, 6)
        XCTAssertThrowsError(try hosts.placement(ranks: 7)) { XCTAssertTrue("\($0)".contains("7 ranks need 7 slots; the hosts give 6"), "\($0)") }
        for bad in ["", "a:", "a:0", "a:x", "a:1:2", "a,,b"] {
            XCTAssertThrowsError(try LaunchHosts(list: bad), bad)
        }
    }

    func testHostfilesReadOpenMPIsFormat() throws {
        let path = NSTemporaryDirectory() + "hostfile-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "# two nodes\nnode1 slots=2\n\nnode2   # one slot\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try LaunchHosts(hostfile: path).placement(ranks: 3), ["node1", "node1", "node2"])
        try "node1 slots=two\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LaunchHosts(hostfile: path)) { XCTAssertTrue("\($0)".contains(":1: 'slots=two' is not slots=N"), "\($0)") }
        XCTAssertThrowsError(try LaunchHosts(hostfile: path + "-none"))
    }

    /// A remote shell sees each word as one word, quotes and all.
    func testTheAgentsCommandLineQuotesEachWord() throws {
        let words = ["env", "A=1", "/opt/fleet", "--name", "it's here", "", "tcp://10.0.0.1:*"]
        let line = LaunchHosts.shellLine(words)
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "for w in " + LaunchHosts.shellLine(Array(words.dropFirst(3))) + "; do printf '[%s]' \"$w\"; done"]
        let out = Pipe()
        shell.standardOutput = out
        try shell.run()
        shell.waitUntilExit()
        XCTAssertEqual(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), "[--name][it's here][][tcp://10.0.0.1:*]", line)
        XCTAssertEqual(LaunchHosts.agent(["FLEET_LAUNCH_AGENT": "ssh -o BatchMode=yes"]), ["ssh", "-o", "BatchMode=yes"])
        XCTAssertEqual(LaunchHosts.agent([:]), ["ssh"])
    }
}
