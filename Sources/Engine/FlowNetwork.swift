/// Flow-level fidelity: messages that start together share links by max–min fairness
/// (progressive filling), and rates are recomputed whenever a flow finishes. A flow's
/// latency (its route's) is added once, at its end. With nothing shared it equals the
/// analytical model exactly; with sharing, oversubscribed links and hot spots slow their
/// flows down as they would in a real fabric.
public struct FlowNetwork: NetworkModel {
    public let fabric: Fabric
    public var fidelity: String { "flow-level (max–min fair sharing of links)" }
    /// Where checkpoint writes go: one aggregate link behind a per-client link per writer
    /// (and, on a shared fabric, the writer's own NIC).
    public var storage: StorageSystem?

    public init(fabric: Fabric, storage: StorageSystem? = nil) {
        self.fabric = fabric
        self.storage = storage
    }

    /// A checkpoint write of `bytes` from GPU `from` to the storage system, starting at `start` seconds.
    public struct StorageWrite: Sendable {
        public var from: Int, bytes: Double, start: Double
        public init(from: Int, bytes: Double, start: Double = 0) {
            self.from = from
            self.bytes = bytes
            self.start = start
        }
    }

    /// When each message and each write finishes (seconds from 0; messages start at `starts`,
    /// or 0), all sharing links: rates are recomputed whenever a flow starts or finishes.
    public func completions(_ messages: [Message], starts: [Double]? = nil, writes: [StorageWrite] = []) -> (messages: [Double], writes: [Double]) {
        var linkIndex: [LinkID: Int] = [:], capacity: [Double] = []
        func index(_ id: LinkID, _ bandwidth: Double) -> Int {
            if let known = linkIndex[id] { return known }
            linkIndex[id] = capacity.count
            capacity.append(bandwidth)
            return capacity.count - 1
        }
        var routes: [[Int]] = [], remaining: [Double] = [], latency: [Double] = [], start: [Double] = []
        for (i, m) in messages.enumerated() {
            var route: [Int] = [], delay = 0.0
            for id in fabric.route(from: m.from, to: m.to, flow: m.flow) {
                route.append(index(id, fabric.link(id).bandwidth.bytesPerSecond))
                delay += fabric.link(id).latency.seconds
            }
            routes.append(route)
            remaining.append(m.bytes)
            latency.append(delay)
            start.append(starts?[i] ?? 0)
        }
        if let storage {
            for w in writes {
                var route = [index(LinkID(tier: .storageClient, index: w.from), storage.perClient.bytesPerSecond),
                             index(LinkID(tier: .storage, index: 0), storage.aggregate.bytesPerSecond)]
                if storage.sharedFabric { route.append(index(LinkID(tier: .endpointUp, index: w.from), fabric.scaleOut.bandwidth.bytesPerSecond)) }
                routes.append(route)
                remaining.append(w.bytes)
                latency.append(storage.latency.seconds)
                start.append(w.start)
            }
        }
        var done = [Double](repeating: 0, count: routes.count)
        var pending = routes.indices.sorted { start[$0] < start[$1] }[...]
        var active: [Int] = [], now = 0.0
        var rate = [Double](repeating: 0, count: routes.count)
        while !active.isEmpty || !pending.isEmpty {
            while let next = pending.first, start[next] <= now + 1e-15 {
                pending.removeFirst()
                if routes[next].isEmpty || remaining[next] <= 0 { done[next] = start[next] + latency[next] } else { active.append(next) }
            }
            if active.isEmpty {
                if let next = pending.first { now = start[next] }
                continue
            }
            assignMaxMinRates(active, routes, capacity, &rate)
            // Advance to the next completion or start; every active flow moves on at its rate.
            var step = active.map { rate[$0] > 0 ? remaining[$0] / rate[$0] : .infinity }.min() ?? 0
            if let next = pending.first { step = min(step, start[next] - now) }
            guard step.isFinite else { break }
            now += step
            var still: [Int] = []
            for f in active {
                remaining[f] -= rate[f] * step
                if remaining[f] <= 1e-9 * max(1, rate[f] * step) { done[f] = now + latency[f] } else { still.append(f) }
            }
            active = still
        }
        return (Array(done[..<messages.count]), Array(done[messages.count...]))
    }

    /// Bytes each link carried for `messages`, for utilisation reports.
    public func linkBytes(_ messages: [Message]) -> [LinkID: Double] {
        var bytes: [LinkID: Double] = [:]
        for m in messages { for link in fabric.route(from: m.from, to: m.to, flow: m.flow) { bytes[link, default: 0] += m.bytes } }
        return bytes
    }

    public func time(_ messages: [Message]) -> SimTime {
        SimTime(seconds: completions(messages).messages.max() ?? 0)
    }

    /// Time for `messages` while checkpoint `writes` share the links they cross.
    public func time(_ messages: [Message], alongside writes: [StorageWrite]) -> SimTime {
        SimTime(seconds: completions(messages, writes: writes).messages.max() ?? 0)
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
