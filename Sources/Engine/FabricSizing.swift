import Foundation

/// What it takes to build a scenario's fabric: switches and cables per tier, and what it can
/// carry across its middle. Counted from the same topology the network model routes over.
public struct FabricSizing: Sendable, Hashable {
    public struct Tier: Sendable, Hashable {
        public let name: String
        public let switches: Int
        /// Cables from this tier's switches to the tier below (for the first tier: to the NICs).
        public let cables: Int
    }

    public let topology: String
    public let endpoints: Int
    public let radix: Int?
    public let tiers: [Tier]
    /// Bandwidth across the narrowest cut that splits the endpoints in halves, bytes/s one way.
    public let bisection: Double
    /// Down:up bandwidth at the first switches (1 for a non-blocking fabric).
    public let oversubscription: Double

    public var switches: Int { tiers.reduce(0) { $0 + $1.switches } }
    public var cables: Int { tiers.reduce(0) { $0 + $1.cables } }

    public init(_ fabric: Fabric) {
        let n = fabric.gpus, nic = fabric.scaleOut.bandwidth.bytesPerSecond, trunk = fabric.switchLink.bandwidth.bytesPerSecond
        func up(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        endpoints = n
        switch fabric.topology {
        case .singleSwitch:
            topology = "single-switch"; radix = nil
            tiers = [Tier(name: "switch", switches: 1, cables: n)]
            bisection = Double(n / 2) * nic
            oversubscription = 1
        case let .fatTree(k, levels, _):
            topology = "fat-tree"; radix = k
            let down = fabric.leafDownPorts, upPorts = fabric.leafUpPorts
            let leaves = up(n, down)
            oversubscription = Double(down) / Double(upPorts)
            if levels <= 2 {
                // Every leaf uplink ends on a spine port; a spine has k ports.
                let spines = up(leaves * upPorts, k)
                tiers = [Tier(name: "leaf", switches: leaves, cables: n), Tier(name: "spine", switches: spines, cables: leaves * upPorts)]
            } else {
                // Pods of k/2 leaves, each leaf wired to the pod's `upPorts` aggregation switches; every
                // aggregation switch has k/2 uplinks, each ending on a core port (a core has k ports).
                let perPod = max(1, k / 2), pods = up(leaves, perPod)
                let aggregation = pods * upPorts, coreUp = max(1, k / 2)
                let cores = up(aggregation * coreUp, k)
                tiers = [Tier(name: "leaf", switches: leaves, cables: n), Tier(name: "aggregation", switches: aggregation, cables: leaves * upPorts),
                         Tier(name: "core", switches: cores, cables: aggregation * coreUp)]
            }
            bisection = Double(n) / 2 * min(nic, trunk) / max(oversubscription, 1)
        case let .railOptimized(k):
            topology = "rail-optimized"; radix = k
            let nodes = fabric.nodes, rails = fabric.gpusPerNode, perLeaf = max(1, k / 2)
            let leaves = rails * up(nodes, perLeaf), uplinks = leaves * perLeaf
            tiers = [Tier(name: "rail leaf", switches: leaves, cables: n), Tier(name: "spine", switches: up(uplinks, k), cables: uplinks)]
            bisection = Double(n) / 2 * min(nic, trunk)
            oversubscription = 1
        case let .torus(dimensions):
            topology = "torus"; radix = 2 * dimensions.count
            let routers = dimensions.reduce(1, *)
            // Each dimension of size > 2 closes a ring: one link per router per dimension (size 2: one link per pair).
            let links = dimensions.reduce(0) { $0 + ($1 > 2 ? routers : $1 == 2 ? routers / 2 : 0) }
            tiers = [Tier(name: "router", switches: routers, cables: n + links)]
            // Cutting the longest dimension in half cuts two wrap-around planes of the others.
            let longest = dimensions.max() ?? 1
            bisection = Double((longest > 2 ? 2 : 1) * routers / max(longest, 1)) * trunk
            oversubscription = 1
        case let .dragonfly(a, p):
            topology = "dragonfly"; radix = nil
            let routers = up(fabric.nodes, p), groups = up(routers, a)
            let local = groups * a * (a - 1) / 2, global = groups * (groups - 1) / 2
            tiers = [Tier(name: "router", switches: routers, cables: n + local + global)]
            bisection = Double((groups / 2) * (groups - groups / 2)) * trunk
            oversubscription = 1
        }
    }
}
