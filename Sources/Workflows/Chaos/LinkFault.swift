import Collectives
import Foundation

/// A network fault for `fleet chaos` on test hosts: once the run reaches `step`, `host`'s link
/// goes down, loses a share of its packets, is held to a low rate, or delays every frame, and
/// `seconds` later it is whole again. Made from outside the run: through the launch agent (the
/// test hosts' agent enters a host's namespace from outside it, so it can undo what it did even
/// with the link down), or for a delay in this process, between the host's link and the bridge.
public struct LinkFault: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// `ip link set eth0 down`: a partitioned host.
        case down
        /// A packet filter drops `percent` % of the packets leaving and entering the host at random
        /// (nftables' numgen; this kernel has no `netem`): TCP retransmits, messages arrive late.
        case loss(percent: Int)
        /// A token bucket (`tc … tbf`) holds the host's sends to `mbit` Mbit/s: a slow, queueing link.
        case slow(mbit: Int)
        /// Every frame to and from the host arrives `ms` later (a `FrameRelay` between its link and
        /// the bridge, `scripts/test-hosts.sh detour`; `netem` where a kernel has it would do the same).
        case delay(ms: Int)
    }

    public let host: String
    public let kind: Kind
    public let step: Int
    public let seconds: Int

    public init(host: String, kind: Kind = .down, step: Int, seconds: Int) {
        self.host = host
        self.kind = kind
        self.step = step
        self.seconds = seconds
    }

    public var description: String {
        switch kind {
        case .down: "link:host=\(host),step=\(step),down=\(seconds)s"
        case let .loss(percent): "loss:host=\(host),step=\(step),drop=\(percent)%,for=\(seconds)s"
        case let .slow(mbit): "slow-link:host=\(host),step=\(step),rate=\(mbit)mbit,for=\(seconds)s"
        case let .delay(ms): "delay:host=\(host),step=\(step),added=\(ms)ms,for=\(seconds)s"
        }
    }

    /// The name `fleet chaos` reports the fault's kind by.
    public var kindName: String {
        switch kind {
        case .down: "link"
        case .loss: "loss"
        case .slow: "slow-link"
        case .delay: "delay"
        }
    }

    /// Whether `hosts` are all test hosts (`FLEET_TEST_HOSTS`, set by `scripts/test-hosts.sh env`):
    /// fleet breaks links nowhere else.
    public static func allowed(_ hosts: LaunchHosts, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        let test = Set((environment["FLEET_TEST_HOSTS"] ?? "").split(separator: ",").map(String.init))
        return hosts.hosts.allSatisfy { test.contains($0.address) }
    }

    /// The shell commands (run inside the host) that make the fault and that undo it; nil for
    /// a delay, which is made outside the host.
    var commands: (make: String, undo: String)? {
        switch kind {
        case .down:
            return ("ip link set eth0 down", "ip link set eth0 up")
        case let .loss(percent):
            let table = "inet fleet-chaos"
            let chains = [("out", "output"), ("in", "input")].map { name, hook in
                "nft add chain \(table) \(name) '{ type filter hook \(hook) priority 0 ; }' && "
                    + "nft add rule \(table) \(name) meta l4proto tcp numgen random mod 100 '<' \(percent) drop"
            }
            return ("nft add table \(table) && " + chains.joined(separator: " && "), "nft delete table \(table)")
        case let .slow(mbit):
            return ("tc qdisc add dev eth0 root tbf rate \(mbit)mbit burst 32kbit latency 400ms", "tc qdisc del dev eth0 root")
        case .delay:
            return nil
        }
    }

    /// Makes the fault; returns what undoes it, or nil when it could not be made.
    func make() -> (@Sendable () -> Void)? {
        let host = self.host
        if let commands {
            let inside = { @Sendable (command: String) in
                (try? ChildProcess.bounded("/usr/bin/env", LaunchHosts.agent() + [host, command], timeout: 30))?.status == 0
            }
            guard inside(commands.make) else { return nil }
            return { _ = inside(commands.undo) }
        }
        guard case let .delay(ms) = kind, let script = ProcessInfo.processInfo.environment[Self.scriptVariable], !script.isEmpty else { return nil }
        let run = { @Sendable (verb: String) in try? ChildProcess.bounded(script, [verb, host], timeout: 30) }
        guard let detour = run("detour"), detour.status == 0 else { return nil }
        let links = detour.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        guard links.count == 2, let relay = try? FrameRelay(between: links[0], and: links[1], delay: .milliseconds(ms)) else {
            _ = run("undetour")
            return nil
        }
        return {
            relay.stop()
            _ = run("undetour")
        }
    }

    /// Where `scripts/test-hosts.sh env` says the script is: a delay is made by it, outside the host.
    public static let scriptVariable = "FLEET_TEST_HOSTS_SCRIPT"
}

/// Watches a run's event channel and makes the fault when the run reaches its step; the link is
/// always made whole again (after `seconds`, or when the run ends first).
final class LinkFaultMaker: @unchecked Sendable {   // `lock` guards `finished`, `undo`, `made` and `stopped`
    private let lock = NSLock()
    private var finished = false, stopped = false
    private var undo: (@Sendable () -> Void)?
    /// nil until the run reaches the fault's step; then whether the fault could be made.
    private var made: Bool?
    private let fault: LinkFault
    private let done = DispatchSemaphore(value: 0)

    init(_ fault: LinkFault, channel: EventChannel) {
        self.fault = fault
        let thread = Thread { [self] in
            defer { done.signal() }
            // Wait for the step.
            while !isFinished && !channel.read().contains(where: { $0.event == .step && ($0.step ?? 0) >= fault.step }) { usleep(50_000) }
            guard !isFinished else { return }
            lock.lock(); undo = fault.make(); made = undo != nil; lock.unlock()
            let until = Date().addingTimeInterval(Double(fault.seconds))
            while !isFinished && Date() < until { usleep(50_000) }
            lock.lock(); undo?(); undo = nil; lock.unlock()
        }
        thread.start()
    }

    private var isFinished: Bool { lock.lock(); defer { lock.unlock() }; return finished }

    /// The run is over: make the link whole now if the fault is still on. Returns whether the
    /// fault was made (nil: the run ended before its step); a second call returns the same.
    @discardableResult
    func stop() -> Bool? {
        lock.lock(); finished = true; let first = !stopped; stopped = true; lock.unlock()
        if first { done.wait() }
        lock.lock(); defer { lock.unlock() }
        return made
    }
}
