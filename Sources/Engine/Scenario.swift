import Parallelism
import Workload

/// A storage system checkpoints are written to.
public struct StorageSystem: Sendable, Hashable {
    /// What all clients together can write.
    public var aggregate: Bandwidth
    /// What one writing GPU's host can write.
    public var perClient: Bandwidth
    public var latency: SimTime
    /// Device-to-host copy rate of an asynchronous snapshot.
    public var snapshot: Bandwidth
    /// Whether checkpoint writes leave through the GPUs' own NICs (sharing the training fabric)
    /// rather than a separate storage network: then no client writes faster than its NIC.
    public var sharedFabric = false

    public init(aggregate: Bandwidth, perClient: Bandwidth, latency: SimTime, snapshot: Bandwidth = .gigabytesPerSecond(25)) {
        self.aggregate = aggregate
        self.perClient = perClient
        self.latency = latency
        self.snapshot = snapshot
    }
}

/// Everything one simulated training job needs: cluster, fabric, storage, workload, layout.
public struct Scenario: Sendable {
    public var name: String
    public var device: Device
    public var nodes: Int
    public var gpusPerNode: Int
    public var topology: Fabric.Topology
    public var scaleUp: Link
    public var scaleOut: Link
    /// Switch-to-switch cables, when they differ from the NIC links.
    public var switchLink: Link?
    /// Seeds the ECMP path choice.
    public var seed: UInt64 = 0
    public var routing: Fabric.Routing = .ecmp
    public var storage: StorageSystem?
    public var model: ModelSpec
    /// Global batch in sequences, and tokens per sequence.
    public var batch: Int
    public var sequence: Int
    public var precision: Device.Precision = .bf16
    /// Fraction of peak FLOP/s a matmul-heavy kernel reaches.
    public var efficiency: Double = 0.5
    public var layout: ParallelLayout
    /// Derive dp from the cluster: GPUs / (tp · pp) (`dp: auto`).
    public var dataParallelAuto = false
    /// ZeRO stage 0–3 (the real trainer runs 0 and 1).
    public var zero: Int = 0
    public var recompute: MemoryModel.Recompute = .none
    /// Attention that never stores the score matrix (FlashAttention); false keeps the s² term.
    public var flashAttention = true
    public var dataParallelAlgorithm: CollectiveModel.Algorithm = .ring
    public var tensorParallelAlgorithm: CollectiveModel.Algorithm = .ring
    /// A mixture of experts' busiest expert's load over the balanced one (`workload.hot_expert`).
    public var hotExpert = 1.0
    public var bucketBytes: Double = 25e6
    /// Save a checkpoint every this many steps (0: never), synchronously or asynchronously.
    public var checkpointEvery = 0
    public var checkpointAsync = false
    public var fidelity = Fidelity.analytical
    /// Failures over days (`reliability:`), when the scenario asks for them.
    public var reliability: ReliabilitySettings?
    /// Power, carbon and water (`energy:`), and a whole run's length and prices (`workload.tokens|steps`, `cost:`).
    public var energy: EnergySettings?
    public var budget: TrainingBudget?
    /// Training data read from storage every step (`data:`).
    public var data: InputPipeline?
    /// Slow nodes, degraded NICs, mixed devices and stragglers (`cluster.slow_nodes`, …).
    public var asymmetry = Asymmetry()

    public init(name: String, device: Device, nodes: Int, gpusPerNode: Int, topology: Fabric.Topology, scaleUp: Link, scaleOut: Link,
                model: ModelSpec, batch: Int, sequence: Int, layout: ParallelLayout) {
        self.name = name
        self.device = device
        self.nodes = nodes
        self.gpusPerNode = gpusPerNode
        self.topology = topology
        self.scaleUp = scaleUp
        self.scaleOut = scaleOut
        self.model = model
        self.batch = batch
        self.sequence = sequence
        self.layout = layout
    }

    public var gpus: Int { nodes * gpusPerNode }
    public var fabric: Fabric {
        var fabric = Fabric(gpus: gpus, gpusPerNode: gpusPerNode, topology: topology, scaleUp: scaleUp, scaleOut: scaleOut, switchLink: switchLink, seed: seed)
        fabric.routing = routing
        fabric.degraded = asymmetry.degradedNodes
        return fabric
    }

    /// The scenario with `dp: auto` resolved (unchanged otherwise).
    public var resolved: Scenario {
        guard dataParallelAuto, layout.tp * layout.pp > 0, gpus % (layout.tp * layout.pp) == 0 else { return self }
        var copy = self
        copy.layout.dp = gpus / (layout.tp * layout.pp)
        return copy
    }

    /// The most gradient buckets per stage the simulator times one by one.
    public static let bucketLimit = 100_000.0

    /// What makes the scenario impossible, if anything (the layout's own checks included).
    public func problems() -> [String] {
        var found: [String] = []
        if dataParallelAuto && gpus % (layout.tp * layout.pp) != 0 {
            return ["dp: auto needs the \(gpus) GPUs to divide by tp × pp = \(layout.tp * layout.pp)"]
        }
        let layout = resolved.layout
        if layout.worldSize != gpus {
            found.append("the layout uses dp × tp × pp = \(layout.dp) × \(layout.tp) × \(layout.pp) = \(layout.worldSize) GPUs, but the cluster has \(nodes) × \(gpusPerNode) = \(gpus)")
        }
        var checked = layout
        checked.zeroStage = 0
        do { try checked.validate(model: model, batch: batch, sequence: sequence) } catch { found.append("\(error)") }
        if !(0...3).contains(zero) { found.append("zero must be 0, 1, 2 or 3 (got \(zero))") }
        if layout.sequenceParallel && !tensorParallelAlgorithm.hasHalves {
            found.append("sequence_parallel: true all-gathers and reduce-scatters over the tensor-parallel group, which collectives.tensor_parallel: \(tensorParallelAlgorithm.rawValue) cannot do; use ring, halving-doubling, hierarchical or auto")
        }
        if !(efficiency > 0 && efficiency <= 1) { found.append("efficiency must be in (0, 1] (got \(efficiency))") }
        if sequence < 1 || sequence > model.context { found.append("sequence \(sequence) must be 1…\(model.context) tokens") }
        if let problem = fabric.problem() { found.append(problem) }
        // The simulator times every bucket of a stage's gradients: bound how many there are.
        let perStage = Double(model.parameterCount) / Double(max(1, layout.tp * layout.pp)) * Double(precision.bytes)
        if perStage / bucketBytes > Self.bucketLimit {
            found.append(String(format: "collectives.bucket %.3g B splits each stage's %.3g B of gradients into %.3g buckets, more than the %.0f "
                                + "the simulator times: use a bigger bucket (frameworks use 25–100 MB)", bucketBytes, perStage, perStage / bucketBytes, Self.bucketLimit))
        }
        return found
    }
}


/// How the fabric is modelled: each message alone on its path (α–β), or messages that run
/// together sharing links by max–min fairness.
public enum Fidelity: String, Sendable, CaseIterable {
    case analytical, flow
}
