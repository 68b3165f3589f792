import Yams

/// `cluster.slow_nodes`, `cluster.groups`, `cluster.stragglers` and `fabric.degraded`: what
/// makes the fleet other than uniform, each value checked where it stands.
extension ScenarioReader {
    func asymmetry(cluster: Mapping, fabric: Mapping, nodes: Int) throws -> Asymmetry {
        var asymmetry = Asymmetry()
        func node(_ value: Node, _ name: String) throws -> Int {
            try int(value, name, minimum: 0, maximum: nodes - 1)
        }
        func entries(_ list: Node, _ name: String, example: String) throws -> [Mapping] {
            guard let items = list.sequence else { throw fail(list, "\(name) must be a list such as \(example)") }
            return try items.map { try mapping($0, "an entry of \(name)", allowed: ["node", "factor"]) }
        }
        if let list = cluster["slow_nodes"] {
            for entry in try entries(list, "cluster.slow_nodes", example: "[{node: 3, factor: 1.5}]") {
                let which = try node(required(entry, "node", "a slow node"), "cluster.slow_nodes.node")
                let factorNode = try required(entry, "factor", "a slow node")
                let factor = try number(factorNode, "cluster.slow_nodes.factor")
                guard factor >= 1 else { throw fail(factorNode, "cluster.slow_nodes.factor is how many times slower the node computes, at least 1 (got \(factor))") }
                asymmetry.slowNodes[which] = factor
            }
        }
        if let list = fabric["degraded"] {
            for entry in try entries(list, "fabric.degraded", example: "[{node: 3, factor: 0.5}]") {
                let which = try node(required(entry, "node", "a degraded node"), "fabric.degraded.node")
                let factorNode = try required(entry, "factor", "a degraded node")
                let factor = try number(factorNode, "fabric.degraded.factor")
                guard factor <= 1 else { throw fail(factorNode, "fabric.degraded.factor is the share of the NICs' bandwidth left, above 0 and at most 1 (got \(factor))") }
                asymmetry.degradedNodes[which] = factor
            }
        }
        if let list = cluster["groups"] {
            guard let items = list.sequence else { throw fail(list, "cluster.groups must be a list such as [{nodes: 0-511, device: H100}, {nodes: 512-1023, device: A100}]") }
            for item in items {
                let entry = try mapping(item, "an entry of cluster.groups", allowed: ["nodes", "device"])
                let range = try required(entry, "nodes", "a device group")
                let text = range.string ?? ""
                let ends = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard (1...2).contains(ends.count), let first = ends.first ?? nil, let last = ends.last ?? nil, 0 <= first, first <= last, last < nodes else {
                    throw fail(range, "cluster.groups.nodes must be a node or a range of nodes within 0–\(nodes - 1), such as 0-511 (got '\(text)')")
                }
                asymmetry.groups.append(Asymmetry.DeviceGroup(nodes: first...last, device: try device(required(entry, "device", "a device group"))))
            }
        }
        if let value = cluster["stragglers"] {
            let entry = try mapping(value, "cluster.stragglers", allowed: ["fraction", "factor", "seed", "distribution", "max", "sigma"])
            let fractionNode = try required(entry, "fraction", "cluster.stragglers")
            let fraction = try number(fractionNode, "cluster.stragglers.fraction")
            guard fraction <= 1 else { throw fail(fractionNode, "cluster.stragglers.fraction is a share of the devices, from 0 to 1 (got \(fraction))") }
            let factorNode = try required(entry, "factor", "cluster.stragglers")
            let factor = try number(factorNode, "cluster.stragglers.factor")
            guard factor >= 1 else { throw fail(factorNode, "cluster.stragglers.factor is how many times slower a straggler computes, at least 1 (got \(factor))") }
            let seed = try entry["seed"].map { UInt64(try int($0, "cluster.stragglers.seed", minimum: 0)) } ?? 0
            asymmetry.stragglers = Asymmetry.Stragglers(fraction: fraction, factor: factor, seed: seed, spread: try spread(entry, factor: factor))
        }
        return asymmetry
    }

    /// `distribution:` of cluster.stragglers: fixed (the default), uniform up to `max`, or lognormal with `sigma`.
    private func spread(_ entry: Mapping, factor: Double) throws -> Asymmetry.Stragglers.Spread {
        let kind = entry["distribution"].map { $0.string ?? "" } ?? "fixed"
        func only(_ key: String, for wanted: String) throws {
            if let node = entry[key], kind != wanted { throw fail(node, "cluster.stragglers.\(key) belongs to distribution: \(wanted) (this one is \(kind))") }
        }
        try only("max", for: "uniform")
        try only("sigma", for: "lognormal")
        switch kind {
        case "fixed":
            return .fixed
        case "uniform":
            let node = try required(entry, "max", "cluster.stragglers with distribution: uniform")
            let max = try number(node, "cluster.stragglers.max")
            guard max >= factor else { throw fail(node, "cluster.stragglers.max is the largest factor, at least factor (\(factor)) (got \(max))") }
            return .uniform(max: max)
        case "lognormal":
            let node = try required(entry, "sigma", "cluster.stragglers with distribution: lognormal")
            let sigma = try number(node, "cluster.stragglers.sigma")
            guard sigma <= 3 else { throw fail(node, "cluster.stragglers.sigma is the spread of log(factor), from 0 to 3 (got \(sigma))") }
            return .lognormal(sigma: sigma)
        default:
            throw fail(entry["distribution"]!, "cluster.stragglers.distribution must be fixed, uniform or lognormal (got '\(kind)')")
        }
    }
}
