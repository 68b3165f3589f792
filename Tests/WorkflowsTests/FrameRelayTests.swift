import Foundation
import Workflows
import XCTest

/// The delayed link `fleet chaos` makes between test hosts: a host's link taken off the bridge
/// (`scripts/test-hosts.sh detour`) and joined to it again through a `FrameRelay` that holds
/// every frame. Needs root (network namespaces and packet sockets; CI runs as root).
final class FrameRelayTests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/test-hosts.sh").path

    private func script(_ arguments: [String]) throws -> (status: Int32, stdout: String) {
        let run = try ChildProcess.bounded("/bin/bash", [Self.script] + arguments, timeout: 60)
        return (run.status, run.stdout)
    }

    override func tearDown() {
        if getuid() == 0 { _ = try? script(["down"]) }
        super.tearDown()
    }

    /// Seconds from host 1 to host 2 and back: a TCP connection to a closed port there is refused
    /// after one round trip (bash's /dev/tcp, so nothing but bash is needed inside the host).
    /// The best of `tries`, after one to settle the neighbours' addresses.
    private func roundTrip(tries: Int = 5) throws -> Double {
        let probe = "for i in $(seq 0 \(tries)); do s=$(date +%s%N); (exec 3<>/dev/tcp/198.18.0.2/9) 2>/dev/null; echo $(( $(date +%s%N) - s )); done"
        let run = try ChildProcess.bounded("/usr/sbin/ip", ["netns", "exec", "fleet-h1", "/bin/bash", "-c", probe], timeout: 60)
        let times = run.stdout.split(separator: "\n").compactMap { Double($0) }.dropFirst()
        return try XCTUnwrap(times.min()) * 1e-9
    }

    func testADetouredLinkCarriesFramesOnlyThroughTheRelayWithItsDelay() throws {
        guard getuid() == 0 else { throw XCTSkip("test hosts need root (network namespaces)") }
        XCTAssertEqual(try script(["up", "2"]).status, 0)
        let direct = try roundTrip()
        XCTAssertLessThan(direct, 0.05, "a veth and a bridge: well under a millisecond")

        let detour = try script(["detour", "198.18.0.2"])
        XCTAssertEqual(detour.status, 0)
        let links = detour.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        XCTAssertEqual(links, ["fleet-hv2", "fleet-hd2"])
        // Off the bridge and no relay: the host is cut off (the probe's connection never completes).
        let cut = try ChildProcess.bounded("/usr/sbin/ip", ["netns", "exec", "fleet-h1", "/bin/bash", "-c", "timeout 1 bash -c 'exec 3<>/dev/tcp/198.18.0.2/9'; echo $?"], timeout: 30)
        XCTAssertEqual(cut.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "124", "no path without the relay")

        // 40 ms each way: a round trip takes at least 80 ms more than it did.
        let relay = try FrameRelay(between: links[0], and: links[1], delay: .milliseconds(40))
        let delayed = try roundTrip(tries: 3)
        relay.stop()
        XCTAssertGreaterThanOrEqual(delayed, 0.080, "two delayed crossings")
        XCTAssertLessThan(delayed, 0.5)
        XCTAssertGreaterThan(relay.carried.0, 0)
        XCTAssertGreaterThan(relay.carried.1, 0)

        // Undone: back on the bridge, as fast as before, the relay's links gone.
        XCTAssertEqual(try script(["undetour", "198.18.0.2"]).status, 0)
        XCTAssertLessThan(try roundTrip(), 0.05)
        let left = try ChildProcess.bounded("/usr/sbin/ip", ["-o", "link", "show"], timeout: 30)
        XCTAssertFalse(left.stdout.contains("fleet-hd2") || left.stdout.contains("fleet-hb2"), left.stdout)
        XCTAssertThrowsError(try FrameRelay(between: "fleet-nowhere", and: links[1], delay: .zero)) { error in
            XCTAssertTrue("\(error)".contains("cannot open a packet socket on fleet-nowhere"), "\(error)")
        }
    }
}
