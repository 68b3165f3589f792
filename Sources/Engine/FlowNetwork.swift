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

    /// Progressive filling: every unfrozen flow's rate rises together until links saturate;
    /// the flows on every link that saturates at that level (ties included, so symmetric
    /// traffic settles in one round) are fixed there; repeat until every flow has a rate.
    private func assignMaxMinRates(_ active: [Int], _ routes: [[Int]], _ capacity: [Double], _ rate: inout [Double]) {
        var left = capacity
        var users = [Int](repeating: 0, count: capacity.count)
        var flowsOn = [[Int]](repeating: [], count: capacity.count)
        for f in active {
            for l in routes[f] {
                users[l] += 1
                flowsOn[l].append(f)
            }
        }
        var frozen = [Bool](repeating: true, count: routes.count)
        for f in active { frozen[f] = false }
        var unfrozen = active.count
        while unfrozen > 0 {
            var share = Double.infinity
            for l in users.indices where users[l] > 0 { share = min(share, left[l] / Double(users[l])) }
            guard share.isFinite else {
                for f in active where !frozen[f] { rate[f] = .infinity }
                return
            }
            let level = share * (1 + 1e-12)
            let saturated = users.indices.filter { users[$0] > 0 && left[$0] / Double(users[$0]) <= level }
            for l in saturated {
                for f in flowsOn[l] where !frozen[f] {
                    rate[f] = share
                    frozen[f] = true
                    unfrozen -= 1
                    for link in routes[f] {
                        left[link] -= share
                        users[link] -= 1
                    }
                }
            }
        }
    }
}
