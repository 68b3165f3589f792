/// One direction of a cable (or of a scale-up port): its rate and its one-way latency.
public struct Link: Sendable, Hashable, Codable {
    public var bandwidth: Bandwidth
    public var latency: SimTime

    public init(bandwidth: Bandwidth, latency: SimTime) {
        self.bandwidth = bandwidth
        self.latency = latency
    }
}

/// A link's identity: which tier it is in and its index there (computed, never stored per
/// link, so a fabric of 100,000 GPUs costs nothing until a path is asked for).
public struct LinkID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Tier: Int, Sendable, Hashable, Comparable {
        case scaleUp, endpointUp, endpointDown, tier1Up, tier1Down, tier2Up, tier2Down, torus, local, global
        /// The storage system (flow-level checkpoint writes): a client's share, and the aggregate.
        case storageClient, storage
        public static func < (a: Tier, b: Tier) -> Bool { a.rawValue < b.rawValue }
    }
    public let tier: Tier
    public let index: Int

    public init(tier: Tier, index: Int) {
        self.tier = tier
        self.index = index
    }

    public static func < (a: LinkID, b: LinkID) -> Bool { a.tier != b.tier ? a.tier < b.tier : a.index < b.index }
    public var description: String { "\(tier)#\(index)" }
}

/// How GPUs reach each other: a scale-up domain per node (NVLink-class), and a scale-out
/// topology between nodes with one NIC per GPU.
public struct Fabric: Sendable {
    public enum Topology: Sendable, Hashable {
        /// Every NIC on one switch.
        case singleSwitch
        /// A k-ary fat-tree (Clos) of 2 or 3 switch tiers; `oversubscription` down:up ports at the leaves.
        case fatTree(radix: Int, tiers: Int, oversubscription: Double)
        /// GPU r of every node on rail r: rail leaves of `radix` ports, spines joining the leaves.
        case railOptimized(radix: Int)
        /// Nodes on a 2D or 3D torus (wrap-around in every dimension), dimension-order routing.
        case torus(dimensions: [Int])
        /// Groups of routers, all-to-all inside a group and one global link between any two groups.
        case dragonfly(routersPerGroup: Int, nodesPerRouter: Int)
    }

    public let gpus: Int
    public let gpusPerNode: Int
    public let topology: Topology
    public let scaleUp: Link
    /// The cables between a GPU's NIC and its first switch.
    public let scaleOut: Link
    /// The cables between switches (or torus and dragonfly routers); the NIC links' kind by default.
    public let switchLink: Link
    /// Mixed into ECMP hashing: another seed, another (equally valid) choice of paths.
    public let seed: UInt64
    /// How a fat-tree picks among equal-cost uplinks: hashing each flow (ECMP), or by
    /// destination (d-mod-k), which keeps shift permutations free of collisions.
    public enum Routing: String, Sendable, Hashable, CaseIterable { case ecmp, destinationModK = "d-mod-k" }
    public var routing: Routing = .ecmp
    /// Node → the share of bandwidth its NIC links keep (a degraded or renegotiated port).
    public var degraded: [Int: Double] = [:]

    public init(gpus: Int, gpusPerNode: Int, topology: Topology, scaleUp: Link, scaleOut: Link, switchLink: Link? = nil, seed: UInt64 = 0) {
        precondition(gpus > 0 && gpusPerNode > 0 && gpus % gpusPerNode == 0, "whole nodes of GPUs")
        self.gpus = gpus
        self.gpusPerNode = gpusPerNode
        self.topology = topology
        self.scaleUp = scaleUp
        self.scaleOut = scaleOut
        self.switchLink = switchLink ?? scaleOut
        self.seed = seed
    }

    public var nodes: Int { gpus / gpusPerNode }
    public func node(of gpu: Int) -> Int { gpu / gpusPerNode }

    public func link(_ id: LinkID) -> Link {
        switch id.tier {
        case .scaleUp: return scaleUp
        case .endpointUp, .endpointDown:
            guard let factor = degraded[node(of: id.index)] else { return scaleOut }
            return Link(bandwidth: Bandwidth(bytesPerSecond: scaleOut.bandwidth.bytesPerSecond * factor), latency: scaleOut.latency)
        default: return switchLink
        }
    }

    /// Endpoints under one leaf switch of a fat-tree: the down ports.
    var leafDownPorts: Int {
        guard case let .fatTree(radix, _, oversubscription) = topology else { return 0 }
        return max(1, Int((Double(radix) * oversubscription / (oversubscription + 1)).rounded()))
    }

    var leafUpPorts: Int {
        guard case let .fatTree(radix, _, _) = topology else { return 0 }
        return max(1, radix - leafDownPorts)
    }

    /// The links a message from `source` to `destination` crosses, in order. `flow` picks
    /// among equal-cost paths (ECMP hashing), so different flows may take different spines.
    public func route(from source: Int, to destination: Int, flow: UInt64 = 0) -> [LinkID] {
        guard source != destination else { return [] }
        if node(of: source) == node(of: destination) {
            return [LinkID(tier: .scaleUp, index: source)]
        }
        let up = LinkID(tier: .endpointUp, index: source), down = LinkID(tier: .endpointDown, index: destination)
        let hash = routing == .ecmp ? Self.ecmpHash(flow: flow ^ seed, source: source, destination: destination) : destination
        switch topology {
        case .singleSwitch:
            return [up, down]
        case let .fatTree(radix, tiers, _):
            let perLeaf = leafDownPorts, ups = leafUpPorts
            let (leafA, leafB) = (source / perLeaf, destination / perLeaf)
            if leafA == leafB { return [up, down] }
            let spine = hash % ups
            if tiers <= 2 {
                return [up, LinkID(tier: .tier1Up, index: leafA * ups + spine), LinkID(tier: .tier1Down, index: leafB * ups + spine), down]
            }
            // Three tiers: pods of radix/2 leaves; cores above the pods' aggregation switches.
            let leavesPerPod = max(1, radix / 2)
            let (podA, podB) = (leafA / leavesPerPod, leafB / leavesPerPod)
            let aggregation = [up, LinkID(tier: .tier1Up, index: leafA * ups + spine)]
            if podA == podB { return aggregation + [LinkID(tier: .tier1Down, index: leafB * ups + spine), down] }
            let core = (hash / ups) % max(1, radix / 2)
            let coresPerAggregation = max(1, radix / 2)
            return aggregation + [LinkID(tier: .tier2Up, index: (podA * ups + spine) * coresPerAggregation + core),
                                  LinkID(tier: .tier2Down, index: (podB * ups + spine) * coresPerAggregation + core),
                                  LinkID(tier: .tier1Down, index: leafB * ups + spine), down]
        case let .railOptimized(radix):
            let railA = source % gpusPerNode, railB = destination % gpusPerNode
            let nodesPerLeaf = max(1, radix / 2)
            let leafA = (node(of: source) / nodesPerLeaf) * gpusPerNode + railA
            let leafB = (node(of: destination) / nodesPerLeaf) * gpusPerNode + railB
            if leafA == leafB { return [up, down] }
            let spine = hash % max(1, radix / 2)
            return [up, LinkID(tier: .tier1Up, index: leafA * radix + spine), LinkID(tier: .tier1Down, index: leafB * radix + spine), down]
        case let .torus(dimensions):
            var here = coordinates(node(of: source), dimensions), path = [up]
            let there = coordinates(node(of: destination), dimensions)
            for d in dimensions.indices {
                let size = dimensions[d]
                var delta = (there[d] - here[d] + size) % size
                let forward = delta <= size - delta
                if !forward { delta = size - delta }
                for _ in 0..<delta {
                    let from = index(here, dimensions)
                    here[d] = (here[d] + (forward ? 1 : size - 1)) % size
                    // Each router has 2 links per dimension: + and −.
                    path.append(LinkID(tier: .torus, index: (from * dimensions.count + d) * 2 + (forward ? 0 : 1)))
                }
            }
            return path + [down]
        case let .dragonfly(routersPerGroup, nodesPerRouter):
            let routerA = node(of: source) / nodesPerRouter, routerB = node(of: destination) / nodesPerRouter
            if routerA == routerB { return [up, down] }
            let (groupA, groupB) = (routerA / routersPerGroup, routerB / routersPerGroup)
            if groupA == groupB { return [up, LinkID(tier: .local, index: routerA * routersPerGroup + routerB % routersPerGroup), down] }
            let groups = max(1, nodes / (routersPerGroup * nodesPerRouter))
            // Minimal route: to the router of the source group that holds the global link to the destination group.
            let gateway = groupA * routersPerGroup + groupB % routersPerGroup, entry = groupB * routersPerGroup + groupA % routersPerGroup
            var path = [up]
            if gateway != routerA { path.append(LinkID(tier: .local, index: routerA * routersPerGroup + gateway % routersPerGroup)) }
            path.append(LinkID(tier: .global, index: groupA * groups + groupB))
            if entry != routerB { path.append(LinkID(tier: .local, index: entry * routersPerGroup + routerB % routersPerGroup)) }
            return path + [down]
        }
    }

    /// A well-mixed hash of a flow's identity (SplitMix64's finaliser), as switches hash 5-tuples.
    static func ecmpHash(flow: UInt64, source: Int, destination: Int) -> Int {
        var x = flow &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(source) &* 0xBF58_476D_1CE4_E5B9 ^ UInt64(destination) &* 0x94D0_49BB_1331_11EB
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return Int(x >> 1)
    }

    private func coordinates(_ node: Int, _ dimensions: [Int]) -> [Int] {
        var rest = node
        return dimensions.map { size in defer { rest /= size }; return rest % size }
    }

    private func index(_ coordinates: [Int], _ dimensions: [Int]) -> Int {
        zip(coordinates, dimensions).reversed().reduce(0) { $0 * $1.1 + $1.0 }
    }

    /// Checks that the topology can hold `gpus`; returns what is wrong, if anything.
    public func problem() -> String? {
        switch topology {
        case .singleSwitch: return nil
        case let .fatTree(radix, tiers, oversubscription):
            guard radix >= 4, (2...3).contains(tiers), oversubscription >= 1 else {
                return "a fat-tree needs radix ≥ 4, 2 or 3 tiers and oversubscription ≥ 1"
            }
            let leaves = tiers == 2 ? radix : radix * radix / 2
            let capacity = leaves * leafDownPorts
            return gpus <= capacity ? nil : "a \(tiers)-tier fat-tree of radix \(radix) holds \(capacity) GPUs, not \(gpus); raise radix or tiers"
        case let .railOptimized(radix):
            return radix >= 4 ? nil : "a rail-optimized fabric needs radix ≥ 4"
        case let .torus(dimensions):
            let product = dimensions.reduce(1, *)
            guard (2...3).contains(dimensions.count), dimensions.allSatisfy({ $0 >= 2 }) else { return "a torus has 2 or 3 dimensions of at least 2" }
            return product == nodes ? nil : "a torus of \(dimensions.map(String.init).joined(separator: "×")) = \(product) nodes, but the cluster has \(nodes)"
        case let .dragonfly(routersPerGroup, nodesPerRouter):
            guard routersPerGroup >= 1, nodesPerRouter >= 1, nodes % (routersPerGroup * nodesPerRouter) == 0 else {
                return "a dragonfly needs the nodes (\(nodes)) to fill whole groups of \(routersPerGroup) routers × \(nodesPerRouter) nodes"
            }
            return nil
        }
    }
}
