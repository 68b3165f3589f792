/// How long messages take on a fabric. Two fidelities sit behind this protocol: analytical
/// (α–β per path, no contention; this file) and flow-level sharing (next).
public protocol NetworkModel: Sendable {
    var fabric: Fabric { get }
    /// Which model produced the numbers, for reports.
    var fidelity: String { get }
    /// Time for `messages` that start together, until the last one arrives.
    func time(_ messages: [Message]) -> SimTime
}

/// One message: `bytes` from GPU `from` to GPU `to`; `flow` picks its ECMP path.
public struct Message: Sendable, Hashable {
    public var from: Int
    public var to: Int
    public var bytes: Double
    public var flow: UInt64

    public init(from: Int, to: Int, bytes: Double, flow: UInt64 = 0) {
        self.from = from
        self.to = to
        self.bytes = bytes
        self.flow = flow
    }
}

/// α–β per path, no contention: a message takes the sum of its links' latencies plus its
/// size over the slowest link of its route; messages that start together do not slow each
/// other down, so a set of them takes as long as its slowest member.
public struct AnalyticalNetwork: NetworkModel {
    public let fabric: Fabric
    public var fidelity: String { "analytical (α–β per path, no contention)" }

    public init(fabric: Fabric) { self.fabric = fabric }

    public func time(_ message: Message) -> SimTime {
        let route = fabric.route(from: message.from, to: message.to, flow: message.flow)
        guard !route.isEmpty else { return .zero }
        var latency = SimTime.zero, slowest = Double.infinity
        for id in route {
            let link = fabric.link(id)
            latency += link.latency
            slowest = min(slowest, link.bandwidth.bytesPerSecond)
        }
        return latency + SimTime(seconds: message.bytes / slowest)
    }

    public func time(_ messages: [Message]) -> SimTime {
        messages.reduce(.zero) { max($0, time($1)) }
    }
}
