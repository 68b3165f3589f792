import Foundation
import Parallelism
import Workload
import Yams

/// Reads a YAML scenario (see `scenarios/`), checking every key and value and naming the
/// line and column of anything wrong, with what is expected there.
public struct ScenarioReader {
    public let path: String
    let text: String

    /// A sweep: the base scenario and, per point, the overridden values and the scenario (or why it is impossible).
    public struct Sweep {
        public let base: Scenario
        public let points: [(values: [(key: String, value: String)], scenario: Result<Scenario, ScenarioError>)]
    }

    public init(path: String) throws {
        self.path = path
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioError.unreadable(path: path, reason: "\(error.localizedDescription); pass a YAML file such as scenarios/gpt3-175b-h100.yaml")
        }
    }

    public init(path: String, text: String) {
        self.path = path
        self.text = text
    }

    static let sections = ["name", "seed", "cluster", "fabric", "storage", "workload", "layout", "collectives", "checkpoint", "fidelity", "reliability",
                           "energy", "cost", "data", "sweep"]

    public func read() throws -> Sweep {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { throw fail(nil, "the scenario is empty; expected a mapping with \(Self.sections.joined(separator: ", "))") }
            root = node
        } catch let error as YamlError {
            throw syntax(error)
        }
        let top = try mapping(root, "the scenario", allowed: Self.sections)
        var scenario = try base(top)
        scenario.name = top["name"].flatMap(\.string) ?? PathName.last(of: path)
        guard let sweepNode = top["sweep"] else {
            if let problem = scenario.problems().first { throw fail(top["layout"] ?? root, problem) }
            return Sweep(base: scenario.resolved, points: [([], .success(scenario.resolved))])
        }
        let sweep = try mapping(sweepNode, "sweep", allowed: Self.sweepable)
        var axes: [(key: String, values: [Node])] = []
        for (key, value) in sweep.pairs {
            guard let values = value.sequence, !values.isEmpty else { throw fail(value, "sweep.\(key) must be a non-empty list, e.g. [8, 16, 32]") }
            axes.append((key, Array(values)))
        }
        var points: [(values: [(key: String, value: String)], scenario: Result<Scenario, ScenarioError>)] = []
        func walk(_ axis: Int, _ current: Scenario, _ chosen: [(key: String, value: String)], _ last: Node) throws {
            guard axis < axes.count else {
                let problem = current.problems().first
                points.append((chosen, problem.map { .failure(fail(last, $0)) } ?? .success(current.resolved)))
                return
            }
            for value in axes[axis].values {
                var next = current
                try apply(axes[axis].key, value, to: &next)
                try walk(axis + 1, next, chosen + [(axes[axis].key, value.string ?? "?")], value)
            }
        }
        try walk(0, scenario, [], sweepNode)
        return Sweep(base: scenario, points: points)
    }

    // MARK: sections

    private func base(_ top: Mapping) throws -> Scenario {
        let cluster = try mapping(required(top, "cluster", "the scenario"), "cluster", allowed: ["device", "nodes", "gpus_per_node", "scale_up", "slow_nodes", "groups", "stragglers"])
        let device = try self.device(required(cluster, "device", "cluster"))
        let nodes = try int(required(cluster, "nodes", "cluster"), "cluster.nodes", minimum: 1)
        let perNode = try int(required(cluster, "gpus_per_node", "cluster"), "cluster.gpus_per_node", minimum: 1)
        let scaleUp = try link(required(cluster, "scale_up", "cluster"), "cluster.scale_up")

        let fabric = try mapping(required(top, "fabric", "the scenario"), "fabric",
                                 allowed: ["topology", "radix", "tiers", "oversubscription", "dimensions", "routers_per_group", "nodes_per_router", "link", "switch_link", "routing", "degraded"])
        let topology = try self.topology(fabric)
        let scaleOut = try link(required(fabric, "link", "fabric"), "fabric.link")

        let workload = try mapping(required(top, "workload", "the scenario"), "workload", allowed: ["model", "batch", "sequence", "precision", "efficiency", "flash_attention", "hot_expert", "tokens", "steps"])
        let modelNode = try required(workload, "model", "workload")
        guard let model = modelNode.string.flatMap(ModelCatalog.named) else {
            throw fail(modelNode, "unknown model '\(modelNode.string ?? "")'; expected one of \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
        }
        let batch = try int(required(workload, "batch", "workload"), "workload.batch", minimum: 1)
        let sequence = try workload["sequence"].map { try int($0, "workload.sequence", minimum: 1) } ?? model.context

        var scenario = Scenario(name: "", device: device, nodes: nodes, gpusPerNode: perNode, topology: topology, scaleUp: scaleUp,
                                scaleOut: scaleOut, model: model, batch: batch, sequence: sequence, layout: ParallelLayout())
        if let node = fabric["routing"] { scenario.routing = try choice(node, "fabric.routing", Fabric.Routing.allCases) }
        scenario.asymmetry = try asymmetry(cluster: cluster, fabric: fabric, nodes: nodes)
        // A calibrated CPU whose ranks are pinned: each computes at its own core's measured speed.
        if let c = device.calibration, c.pinned, !c.coreSpeeds.isEmpty {
            scenario.asymmetry.cores = Asymmetry.PinnedCores(speeds: c.coreSpeeds, sharedByNodes: c.coresSharedByNodes)
        }
        if let node = fabric["switch_link"] { scenario.switchLink = try link(node, "fabric.switch_link") }
        if let node = top["seed"] { scenario.seed = UInt64(try int(node, "seed", minimum: 0)) }
        if let node = workload["precision"] { scenario.precision = try choice(node, "workload.precision", Device.Precision.allCases) }
        if let node = workload["efficiency"] {
            scenario.efficiency = try number(node, "workload.efficiency")
            guard scenario.efficiency <= 1 else { throw fail(node, "workload.efficiency is the share of peak compute achieved, above 0 and at most 1 (got '\(node.string ?? "?")')") }
        }
        if let node = workload["hot_expert"] {
            guard model.moe != nil else { throw fail(node, "workload.hot_expert sets a mixture of experts' busiest expert's load, and \(model.name) has no experts") }
            scenario.hotExpert = try number(node, "workload.hot_expert")
            guard scenario.hotExpert >= 1 else {
                throw fail(node, "workload.hot_expert is the busiest expert's load over the balanced one: 1 (even) or more (got '\(node.string ?? "?")')")
            }
        }
        if let node = workload["flash_attention"] { scenario.flashAttention = try flag(node, "workload.flash_attention") }

        let layout = try mapping(required(top, "layout", "the scenario"), "layout", allowed: ["dp", "tp", "pp", "ep", "cp", "microbatches", "schedule", "virtual_stages", "zero", "recompute", "sequence_parallel"])
        for (key, value) in layout.pairs { try apply(key, value, to: &scenario) }

        if let node = top["collectives"] {
            let collectives = try mapping(node, "collectives", allowed: ["data_parallel", "tensor_parallel", "bucket"])
            if let n = collectives["data_parallel"] { scenario.dataParallelAlgorithm = try choice(n, "collectives.data_parallel", CollectiveModel.Algorithm.allCases) }
            if let n = collectives["tensor_parallel"] { scenario.tensorParallelAlgorithm = try choice(n, "collectives.tensor_parallel", CollectiveModel.Algorithm.allCases) }
            if let n = collectives["bucket"] { scenario.bucketBytes = try quantity(n, "collectives.bucket", Units.bytes, positive: true) }
            if let n = collectives["data_parallel"], let problem = Self.zeroProblem(scenario) { throw fail(n, problem) }
        }
        if let node = top["storage"] {
            let storage = try mapping(node, "storage", allowed: ["aggregate", "per_client", "latency", "snapshot", "shared_fabric"])
            scenario.storage = StorageSystem(
                aggregate: Bandwidth(bytesPerSecond: try quantity(required(storage, "aggregate", "storage"), "storage.aggregate", Units.bandwidth, positive: true)),
                perClient: Bandwidth(bytesPerSecond: try quantity(required(storage, "per_client", "storage"), "storage.per_client", Units.bandwidth, positive: true)),
                latency: SimTime(seconds: try quantity(required(storage, "latency", "storage"), "storage.latency", Units.time)),
                snapshot: Bandwidth(bytesPerSecond: try storage["snapshot"].map { try quantity($0, "storage.snapshot", Units.bandwidth, positive: true) } ?? 25e9))
            if let shared = storage["shared_fabric"] { scenario.storage?.sharedFabric = try flag(shared, "storage.shared_fabric") }
        }
        if let node = top["checkpoint"] {
            let checkpoint = try mapping(node, "checkpoint", allowed: ["every", "async"])
            scenario.checkpointEvery = try int(required(checkpoint, "every", "checkpoint"), "checkpoint.every", minimum: 0)
            if let n = checkpoint["async"] { scenario.checkpointAsync = try flag(n, "checkpoint.async") }
            if scenario.checkpointEvery > 0 && scenario.storage == nil { throw fail(node, "checkpoints need a storage: section (aggregate, per_client, latency)") }
        }
        if let node = top["reliability"] { scenario.reliability = try reliability(node) }
        if let node = top["energy"] { scenario.energy = try energy(node, device: device) }
        scenario.budget = try budget(workload, cost: top["cost"])
        if let node = top["data"] {
            guard scenario.storage != nil else { throw fail(node, "data is read from storage: add a storage: section (aggregate, per_client, latency)") }
            scenario.data = try data(node)
        }
        if let node = top["fidelity"] {
            guard let value = node.string.flatMap(Fidelity.init(rawValue:)) else {
                throw fail(node, "fidelity must be analytical (α–β per path) or flow (max–min fair sharing of links), got '\(node.string ?? "")'")
            }
            scenario.fidelity = value
        }
        return scenario
    }

    private func reliability(_ node: Node) throws -> ReliabilitySettings {
        let map = try mapping(node, "reliability", allowed: ["duration", "checkpoint_interval", "checkpointing", "detection", "rescheduling",
                                                              "repair", "spares", "stragglers", "seed", "components", "intervals", "maintenance", "preemptions"])
        var settings = ReliabilitySettings(duration: try quantity(required(map, "duration", "reliability"), "reliability.duration", Units.time, positive: true))
        if let n = map["checkpoint_interval"], n.string != "auto" { settings.checkpointInterval = try quantity(n, "reliability.checkpoint_interval", Units.time, positive: true) }
        if let n = map["checkpointing"] { settings.checkpointing = try choice(n, "reliability.checkpointing", ReliabilityModel.Checkpointing.allCases) }
        if let n = map["detection"] { settings.detection = try quantity(n, "reliability.detection", Units.time) }
        if let n = map["rescheduling"] { settings.rescheduling = try quantity(n, "reliability.rescheduling", Units.time) }
        if let n = map["repair"] { settings.repair = try quantity(n, "reliability.repair", Units.time) }
        if let n = map["spares"] { settings.spares = try int(n, "reliability.spares", minimum: 0) }
        if let n = map["seed"] { settings.seed = UInt64(try int(n, "reliability.seed", minimum: 0)) }
        if let n = map["maintenance"] {
            let m = try mapping(n, "reliability.maintenance", allowed: ["every", "lasts"])
            let every = try quantity(required(m, "every", "reliability.maintenance"), "reliability.maintenance.every", Units.time, positive: true)
            let lasts = try quantity(required(m, "lasts", "reliability.maintenance"), "reliability.maintenance.lasts", Units.time)
            guard lasts < every else { throw fail(n, "reliability.maintenance.lasts must be shorter than its every") }
            settings.maintenance = (every, lasts)
        }
        if let n = map["preemptions"] {
            let p = try mapping(n, "reliability.preemptions", allowed: ["every", "wait"])
            settings.preemptions = (try quantity(required(p, "every", "reliability.preemptions"), "reliability.preemptions.every (the mean time between them)", Units.time, positive: true),
                                    try p["wait"].map { try quantity($0, "reliability.preemptions.wait", Units.time) } ?? 0)
        }
        if let n = map["stragglers"] {
            let stragglers = try mapping(n, "reliability.stragglers", allowed: ["fraction", "factor"])
            let fraction = try required(stragglers, "fraction", "reliability.stragglers")
            settings.stragglerFraction = try number(fraction, "reliability.stragglers.fraction")
            guard settings.stragglerFraction <= 1 else {
                throw fail(fraction, "reliability.stragglers.fraction is a share of the devices, from 0 to 1 (got '\(fraction.string ?? "?")')")
            }
            let factor = try required(stragglers, "factor", "reliability.stragglers")
            settings.stragglerFactor = try number(factor, "reliability.stragglers.factor")
            guard settings.stragglerFactor >= 1 else {
                throw fail(factor, "reliability.stragglers.factor is how many times slower a straggler runs, at least 1 (got '\(factor.string ?? "?")')")
            }
        }
        if let n = map["intervals"] {
            guard let list = n.sequence, !list.isEmpty else { throw fail(n, "reliability.intervals must be a list of times, e.g. [10 min, 30 min, 1 h]") }
            settings.intervals = try list.map { try quantity($0, "reliability.intervals", Units.time, positive: true) }
        }
        let list = try required(map, "components", "reliability")
        guard let entries = list.sequence, !entries.isEmpty else {
            throw fail(list, "reliability.components must be a list such as - {name: gpu, per: gpu, mttf: 50000 h}")
        }
        for entry in entries {
            let c = try mapping(entry, "a reliability component", allowed: ["name", "per", "count", "mttf", "distribution", "shape"])
            let name = try required(c, "name", "a reliability component").string ?? "?"
            var scope = ReliabilitySettings.ComponentSpec.Scope.fixed, count = 1
            if let per = c["per"] {
                guard let value = per.string, value == "gpu" || value == "node" else { throw fail(per, "per must be gpu or node") }
                scope = value == "gpu" ? .gpu : .node
                if let n = c["count"] { count = try int(n, "count", minimum: 1) }
            } else {
                count = try int(required(c, "count", "component \(name) (or per: gpu|node)"), "count", minimum: 1)
            }
            let mttf = try quantity(required(c, "mttf", "component \(name)"), "mttf", Units.time)
            guard mttf > 0 else { throw fail(c["mttf"], "mttf must be positive") }
            var distribution = ReliabilityModel.Component.Distribution.exponential
            if let d = c["distribution"] {
                switch d.string {
                case "exponential": break
                case "weibull":
                    let node = try required(c, "shape", "a weibull component")
                    let shape = try number(node, "shape")
                    // Shapes outside this range describe no hardware population and break the sampler's arithmetic.
                    guard (0.1...10).contains(shape) else { throw fail(node, "shape must be between 0.1 and 10 (below 1: failures cluster early; got '\(node.string ?? "?")')") }
                    distribution = .weibull(shape: shape)
                default: throw fail(d, "distribution must be exponential or weibull")
                }
            }
            settings.components.append(.init(name: name, scope: scope, count: count, mttf: mttf, distribution: distribution))
        }
        return settings
    }

    /// More ports than any switch has had (today's reach 64–512): beyond it counts stop meaning hardware.
    static let portLimit = 65_536

    private func topology(_ fabric: Mapping) throws -> Fabric.Topology {
        let node = try required(fabric, "topology", "fabric")
        switch node.string {
        case "single-switch": return .singleSwitch
        case "fat-tree":
            return .fatTree(radix: try int(required(fabric, "radix", "fabric"), "fabric.radix", minimum: 4, maximum: Self.portLimit),
                            tiers: try fabric["tiers"].map { try int($0, "fabric.tiers (2: leaf–spine, 3: leaf–aggregation–core)", minimum: 2, maximum: 3) } ?? 2,
                            oversubscription: try fabric["oversubscription"].map { try number($0, "fabric.oversubscription") } ?? 1)
        case "rail-optimized":
            return .railOptimized(radix: try int(required(fabric, "radix", "fabric"), "fabric.radix", minimum: 4, maximum: Self.portLimit))
        case "torus":
            let dimensions = try required(fabric, "dimensions", "fabric")
            guard let list = dimensions.sequence else { throw fail(dimensions, "fabric.dimensions must be a list such as [8, 8, 4]") }
            return .torus(dimensions: try list.map { try int($0, "fabric.dimensions", minimum: 2, maximum: 1 << 20) })
        case "dragonfly":
            return .dragonfly(routersPerGroup: try int(required(fabric, "routers_per_group", "fabric"), "fabric.routers_per_group", minimum: 1, maximum: Self.portLimit),
                              nodesPerRouter: try int(required(fabric, "nodes_per_router", "fabric"), "fabric.nodes_per_router", minimum: 1, maximum: Self.portLimit))
        default:
            throw fail(node, "unknown topology '\(node.string ?? "")'; expected single-switch, fat-tree, rail-optimized, torus or dragonfly")
        }
    }

    /// ZeRO reduce-scatters gradients and all-gathers parameters over the data-parallel group:
    /// the chosen algorithm must have those halves (a binomial tree has not).
    static func zeroProblem(_ s: Scenario) -> String? {
        guard s.zero >= 1, !s.dataParallelAlgorithm.hasHalves else { return nil }
        return "zero: \(s.zero) reduce-scatters gradients and all-gathers parameters, which collectives.data_parallel: \(s.dataParallelAlgorithm.rawValue) cannot do; "
            + "use ring, halving-doubling, hierarchical or auto, or zero: 0"
    }

    static let sweepable = ["dp", "tp", "pp", "ep", "cp", "microbatches", "schedule", "virtual_stages", "zero", "recompute", "sequence_parallel",
                            "batch", "nodes", "device"]

    /// Sets one layout (or sweepable) value.
    private func apply(_ key: String, _ value: Node, to scenario: inout Scenario) throws {
        switch key {
        case "dp":
            scenario.dataParallelAuto = value.string == "auto"
            if !scenario.dataParallelAuto { scenario.layout.dp = try int(value, "dp (a number or auto)", minimum: 1) }
        case "tp": scenario.layout.tp = try int(value, key, minimum: 1)
        case "pp": scenario.layout.pp = try int(value, key, minimum: 1)
        case "ep": scenario.layout.ep = try int(value, key, minimum: 1)
        case "cp": scenario.layout.cp = try int(value, key, minimum: 1)
        case "microbatches": scenario.layout.microbatches = try int(value, key, minimum: 1)
        case "schedule":
            scenario.layout.schedule = try choice(value, key, PipelineSchedule.Kind.allCases)
            // Interleaving without a chunk count takes two, as `fleet train` does; other schedules run one.
            if scenario.layout.schedule != .interleaved || scenario.layout.virtualStages == 1 {
                scenario.layout.virtualStages = ParallelLayout.defaultVirtualStages(scenario.layout.schedule)
            }
        case "virtual_stages": scenario.layout.virtualStages = try int(value, key, minimum: 1)
        case "zero":
            scenario.zero = try int(value, key, minimum: 0)
            if let problem = Self.zeroProblem(scenario) { throw fail(value, problem) }
        case "sequence_parallel":
            scenario.layout.sequenceParallel = try flag(value, "sequence_parallel")
        case "recompute": scenario.recompute = try choice(value, key, [MemoryModel.Recompute.none, .full])
        case "batch": scenario.batch = try int(value, key, minimum: 1)
        case "nodes": scenario.nodes = try int(value, key, minimum: 1)
        case "device":
            guard let device = value.string.flatMap(DeviceCatalog.named) else { throw fail(value, "unknown device; expected one of \(DeviceCatalog.all.map(\.name).joined(separator: ", "))") }
            scenario.device = device
        default: throw fail(value, "'\(key)' cannot be set here; expected one of \(Self.sweepable.joined(separator: ", "))")
        }
    }
}
