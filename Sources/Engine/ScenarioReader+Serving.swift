import Foundation
import Workload
import Yams

/// A serving scenario: `cluster`, `workload` (model, precision, efficiency) and `serving:`.
extension ScenarioReader {
    static let servingSections = ["name", "seed", "cluster", "workload", "serving"]

    /// The serving scenario in the file, or nil when it has no `serving:` section (a training scenario).
    public func readServing() throws -> ServingScenario? {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return nil }
            root = node
        } catch let error as YamlError {
            throw syntax(error)
        }
        guard let top = root.mapping, let servingNode = top["serving"] else { return nil }
        let map = try mapping(root, "a serving scenario", allowed: Self.servingSections)
        let cluster = try mapping(required(map, "cluster", "the scenario"), "cluster", allowed: ["device", "nodes", "gpus_per_node", "scale_up"])
        let device = try self.device(required(cluster, "device", "cluster"))
        let nodes = try int(required(cluster, "nodes", "cluster"), "cluster.nodes", minimum: 1, maximum: 1 << 20)
        let perNode = try int(required(cluster, "gpus_per_node", "cluster"), "cluster.gpus_per_node", minimum: 1, maximum: 1024)
        let scaleUp = try link(required(cluster, "scale_up", "cluster"), "cluster.scale_up")
        let workload = try mapping(required(map, "workload", "the scenario"), "workload", allowed: ["model", "precision", "efficiency"])
        let modelNode = try required(workload, "model", "workload")
        guard let model = modelNode.string.flatMap(ModelCatalog.named) else {
            throw fail(modelNode, "unknown model '\(modelNode.string ?? "")'; expected one of \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
        }
        let serving = try mapping(servingNode, "serving", allowed: ["tp", "instances", "rate", "prompt", "output", "max_batch", "duration", "objectives", "rates", "disaggregation"])
        let rate = try number(required(serving, "rate", "serving"), "serving.rate (requests per second)")
        var s = ServingScenario(name: map["name"]?.string ?? PathName.last(of: path), device: device, model: model, scaleUp: scaleUp, rate: rate,
                                prompt: try length(required(serving, "prompt", "serving"), "serving.prompt"),
                                output: try length(required(serving, "output", "serving"), "serving.output"),
                                duration: try quantity(required(serving, "duration", "serving"), "serving.duration", Units.time, positive: true))
        if let n = workload["precision"] { s.precision = try choice(n, "workload.precision", Device.Precision.allCases) }
        if let n = workload["efficiency"] {
            s.efficiency = try number(n, "workload.efficiency")
            guard s.efficiency <= 1 else { throw fail(n, "workload.efficiency is the share of peak compute achieved, above 0 and at most 1") }
        }
        if let n = map["seed"] { s.seed = UInt64(try int(n, "seed", minimum: 0)) }
        s.tp = try serving["tp"].map { try int($0, "serving.tp", minimum: 1, maximum: perNode) } ?? 1
        let gpus = nodes * perNode
        if let n = serving["instances"], n.string != "auto" {
            s.instances = try int(n, "serving.instances (a number or auto)", minimum: 1, maximum: 1 << 20)
            guard s.instances * s.tp <= gpus else { throw fail(n, "\(s.instances) instances of tp \(s.tp) need \(s.instances * s.tp) GPUs; the cluster has \(gpus)") }
        } else {
            s.instances = max(1, gpus / s.tp)
        }
        if let n = serving["max_batch"] { s.maxBatch = try int(n, "serving.max_batch", minimum: 1, maximum: 1 << 16) }
        if let n = serving["objectives"] {
            let o = try mapping(n, "serving.objectives", allowed: ["ttft_p99", "tpot_p99"])
            s.ttftObjective = try o["ttft_p99"].map { try quantity($0, "serving.objectives.ttft_p99", Units.time, positive: true) }
            s.tpotObjective = try o["tpot_p99"].map { try quantity($0, "serving.objectives.tpot_p99", Units.time, positive: true) }
        }
        if let n = serving["rates"] {
            guard let list = n.sequence, !list.isEmpty else { throw fail(n, "serving.rates must be a non-empty list of requests per second, e.g. [5, 10, 20]") }
            s.rates = try list.map { try number($0, "serving.rates") }
        }
        if let n = serving["disaggregation"] {
            let d = try mapping(n, "serving.disaggregation", allowed: ["prefill_instances", "link"])
            let prefill = try required(d, "prefill_instances", "serving.disaggregation")
            guard s.instances >= 2 else { throw fail(n, "disaggregation needs at least 2 instances (one to prefill, one to decode)") }
            s.prefillInstances = try int(prefill, "serving.disaggregation.prefill_instances", minimum: 1, maximum: s.instances - 1)
            if let link = d["link"] { s.handoverBandwidth = try quantity(link, "serving.disaggregation.link", Units.bandwidth, positive: true) }
        }
        if let problem = s.problem() { throw fail(servingNode, problem) }
        return s
    }

    /// `512` (fixed), or `{distribution: exponential, mean: 512}` / `{distribution: uniform, min: 64, max: 512}`.
    private func length(_ node: Node, _ name: String) throws -> ServingScenario.Length {
        if let n = node.int { guard (1...1_000_000).contains(n) else { throw fail(node, "\(name) must be 1 to 1,000,000 tokens") }; return .fixed(n) }
        let map = try mapping(node, name, allowed: ["distribution", "mean", "min", "max"])
        switch map["distribution"]?.string ?? "fixed" {
        case "exponential":
            let mean = try number(required(map, "mean", name), name + ".mean")
            guard mean <= 50_000 else { throw fail(map["mean"], "\(name).mean must be at most 50,000 tokens") }
            return .exponential(mean: mean)
        case "uniform":
            let low = try int(required(map, "min", name), name + ".min", minimum: 1, maximum: 1_000_000)
            let high = try int(required(map, "max", name), name + ".max", minimum: low, maximum: 1_000_000)
            return .uniform(low, high)
        case "fixed": return .fixed(try int(required(map, "mean", name), name + ".mean", minimum: 1, maximum: 1_000_000))
        default: throw fail(map["distribution"], "\(name).distribution must be fixed, exponential or uniform")
        }
    }
}
