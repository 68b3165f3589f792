import Collectives
import Foundation

/// A network fault for `fleet chaos` on test hosts: `host`'s link goes down once the run
/// reaches `step` and comes back `seconds` later. Made from outside the run through the launch
/// agent (the test hosts' agent enters a host without the network, so it can bring it back).
public struct LinkCut: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let step: Int
    public let seconds: Int

    public var description: String { "link:host=\(host),step=\(step),down=\(seconds)s" }

    /// Whether `hosts` are all test hosts (`FLEET_TEST_HOSTS`, set by `scripts/test-hosts.sh env`):
    /// fleet cuts links nowhere else.
    public static func allowed(_ hosts: LaunchHosts, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        let test = Set((environment["FLEET_TEST_HOSTS"] ?? "").split(separator: ",").map(String.init))
        return hosts.hosts.allSatisfy { test.contains($0.address) }
    }

    /// Runs `ip link set eth0 STATE` inside the host; returns whether it worked.
    @discardableResult
    func set(_ state: String) -> Bool {
        (try? ChildProcess.bounded("/usr/bin/env", LaunchHosts.agent() + [host, "ip link set eth0 \(state)"], timeout: 30))?.status == 0
    }
}

/// Watches a run's event channel and cuts the link when the run reaches the cut's step; the
/// link is always restored (after `seconds`, or when the run ends first).
final class LinkCutter: @unchecked Sendable {   // `lock` guards `finished` and `down`
    private let lock = NSLock()
    private var finished = false, down = false
    private let cut: LinkCut
    private let done = DispatchSemaphore(value: 0)

    init(_ cut: LinkCut, channel: EventChannel) {
        self.cut = cut
        let thread = Thread { [self] in
            defer { done.signal() }
            // Wait for the step.
            while !isFinished && !channel.read().contains(where: { $0.event == .step && ($0.step ?? 0) >= cut.step }) { usleep(50_000) }
            guard !isFinished else { return }
            lock.lock(); down = cut.set("down"); lock.unlock()
            let until = Date().addingTimeInterval(Double(cut.seconds))
            while !isFinished && Date() < until { usleep(50_000) }
            lock.lock(); if down { cut.set("up"); down = false }; lock.unlock()
        }
        thread.start()
    }

    private var isFinished: Bool { lock.lock(); defer { lock.unlock() }; return finished }

    /// The run is over: restore the link now if it is still down.
    func stop() {
        lock.lock(); finished = true; lock.unlock()
        done.wait()
    }
}
