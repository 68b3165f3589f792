/// Flow-level fidelity: messages that start together share links by max–min fairness
/// (progressive filling), and rates are recomputed whenever a flow finishes. A flow's
/// latency (its route's) is added once, at its end. With nothing shared it equals the
/// analytical model exactly; with sharing, oversubscribed links and hot spots slow their
/// flows down as they would in a real fabric.
public struct FlowNetwork: NetworkModel {
    public let fabric: Fabric
    public var fidelity: String { "flow-level (max–min fair sharing of links)" }

    public init(fabric: Fabric) { self.fabric = fabric }

    /// Bytes each link carried for `messages`, for utilisation reports.
    public func linkBytes(_ messages: [Message]) -> [LinkID: Double] {
        var bytes: [LinkID: Double] = [:]
        for m in messages { for link in fabric.route(from: m.from, to: m.to, flow: m.flow) { bytes[link, default: 0] += m.bytes } }
        return bytes
    }

    public func time(_ messages: [Message]) -> SimTime {
        // Flows on links, as dense indices.
        var linkIndex: [LinkID: Int] = [:], capacity: [Double] = []
        var routes: [[Int]] = [], remaining: [Double] = [], latency: [Double] = []
        for m in messages where m.from != m.to {
            var route: [Int] = [], delay = 0.0
            for id in fabric.route(from: m.from, to: m.to, flow: m.flow) {
                let index = linkIndex[id] ?? {
                    let new = capacity.count
                    linkIndex[id] = new
                    capacity.append(fabric.link(id).bandwidth.bytesPerSecond)
                    return new
                }()
                route.append(index)
                delay += fabric.link(id).latency.seconds
            }
            routes.append(route)
            remaining.append(m.bytes)
            latency.append(delay)
        }
        var active = Array(routes.indices), now = 0.0, finish = 0.0
        var rate = [Double](repeating: 0, count: routes.count)
        while !active.isEmpty {
            assignMaxMinRates(active, routes, capacity, &rate)
            // Advance to the next completion; every other flow moves on at its rate.
            let step = active.map { rate[$0] > 0 ? remaining[$0] / rate[$0] : .infinity }.min() ?? 0
            guard step.isFinite else { break }
            now += step
            var still: [Int] = []
            for f in active {
                remaining[f] -= rate[f] * step
                if remaining[f] <= 1e-9 * max(1, rate[f] * step) { finish = max(finish, now + latency[f]) } else { still.append(f) }
            }
            active = still
        }
        // Zero-byte messages still pay their latency.
        for f in routes.indices where remaining[f] <= 0 { finish = max(finish, latency[f]) }
        return SimTime(seconds: finish)
    }

    /// Progressive filling: the link whose capacity left per unfrozen flow is smallest fixes
    /// those flows at that share; repeat until every flow has a rate.
    private func assignMaxMinRates(_ active: [Int], _ routes: [[Int]], _ capacity: [Double], _ rate: inout [Double]) {
        var left = capacity
        var users = [Int](repeating: 0, count: capacity.count)
        for f in active { for l in routes[f] { users[l] += 1 } }
        var unfrozen = Set(active)
        while !unfrozen.isEmpty {
            var bottleneck = -1, share = Double.infinity
            for l in users.indices where users[l] > 0 {
                let s = left[l] / Double(users[l])
                if s < share { share = s; bottleneck = l }
            }
            guard bottleneck >= 0 else {
                for f in unfrozen { rate[f] = .infinity }
                return
            }
            for f in unfrozen.sorted() where routes[f].contains(bottleneck) {
                rate[f] = share
                unfrozen.remove(f)
                for l in routes[f] {
                    left[l] -= share
                    users[l] -= 1
                }
            }
        }
    }
}
