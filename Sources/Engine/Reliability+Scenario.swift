/// A scenario's `reliability:` section, before the cluster's sizes turn it into a model.
public struct ReliabilitySettings: Sendable {
    public struct ComponentSpec: Sendable {
        public enum Scope: String, Sendable { case gpu, node, fixed }
        public var name: String
        public var scope: Scope
        /// Units when `scope` is fixed, or per GPU / per node.
        public var count: Int
        public var mttf: Double
        public var distribution: ReliabilityModel.Component.Distribution
    }

    public var duration: Double
    /// nil: the Young–Daly interval.
    public var checkpointInterval: Double?
    public var checkpointing: ReliabilityModel.Checkpointing = .sync
    public var detection = 60.0, rescheduling = 300.0, repair = 4 * 3600.0
    public var spares = 0
    public var stragglerFraction = 0.0, stragglerFactor = 1.0
    public var seed: UInt64 = 1
    public var components: [ComponentSpec] = []
    /// Checkpoint intervals to sweep (empty: no sweep).
    public var intervals: [Double] = []
    /// Announced stops: maintenance (every, lasts) and preemptions (mean interval, wait for capacity).
    public var maintenance: (every: Double, lasts: Double)?
    public var preemptions: (meanInterval: Double, wait: Double)?
}

extension Scenario {
    /// Bytes of one checkpoint: the weights in the training precision plus an fp32 master
    /// copy and two fp32 Adam moments.
    public var checkpointBytes: Double { Double(model.parameterCount) * Double(precision.bytes + (precision == .fp32 ? 8 : 12)) }

    /// Ranks that write a checkpoint: one data-parallel replica (every tensor and pipeline rank).
    public var checkpointWriters: Double { Double(layout.tp * layout.pp) }

    /// One save written through `storage`: its latency, then the state at the writers' combined
    /// rate — each writer at its client link (and its NIC, when storage shares the fabric), all
    /// of them together at most the storage's aggregate.
    public func checkpointWriteTime(_ storage: StorageSystem) -> SimTime {
        let client = storage.sharedFabric ? min(storage.perClient.bytesPerSecond, scaleOut.bandwidth.bytesPerSecond) : storage.perClient.bytesPerSecond
        let rate = min(storage.aggregate.bytesPerSecond, checkpointWriters * client)
        return storage.latency + SimTime(seconds: checkpointBytes / rate)
    }

    /// The reliability model of this cluster and job: component counts from its sizes,
    /// checkpoint write, stall and reload times from its storage and fabric.
    /// With the step's report, an asynchronous save also costs the training traffic its
    /// write slows down (flow-level fidelity on a shared fabric).
    public func reliabilityModel(_ settings: ReliabilitySettings, step: StepReport? = nil) -> ReliabilityModel {
        let components = settings.components.map { spec -> ReliabilityModel.Component in
            let count = spec.scope == .gpu ? spec.count * gpus : spec.scope == .node ? spec.count * nodes : spec.count
            return ReliabilityModel.Component(name: spec.name, count: count, mttf: spec.mttf, distribution: spec.distribution)
        }
        let perGPU = checkpointBytes / checkpointWriters
        let storage = self.storage ?? StorageSystem(aggregate: .gigabytesPerSecond(100), perClient: .gigabytesPerSecond(2), latency: SimTime(seconds: 0.01))
        let write = checkpointWriteTime(storage).seconds
        var model = ReliabilityModel(components: components, duration: settings.duration, checkpointInterval: 3600,
                                     checkpointWrite: write, reload: write)
        switch settings.checkpointing {
        case .sync: break
        case .async:
            model.snapshotStall = perGPU / storage.snapshot.bytesPerSecond + (step?.breakdown.checkpointContention.seconds ?? 0)
            if let write = step?.breakdown.checkpointWrite, write > .zero { model.checkpointWrite = write.seconds }
        case .inMemory:
            // A copy to a peer host over the scale-out network; a restart reloads from the peers.
            model.snapshotStall = perGPU / scaleOut.bandwidth.bytesPerSecond
            model.reload = perGPU / scaleOut.bandwidth.bytesPerSecond + scaleOut.latency.seconds
        }
        model.checkpointing = settings.checkpointing
        model.detection = settings.detection
        model.rescheduling = settings.rescheduling
        model.repair = settings.repair
        model.maintenance = settings.maintenance
        model.preemptions = settings.preemptions
        model.spares = settings.spares
        model.stragglerFraction = settings.stragglerFraction
        model.stragglerFactor = settings.stragglerFactor
        model.gpus = gpus
        model.seed = settings.seed
        model.checkpointInterval = settings.checkpointInterval ?? model.youngDalyInterval
        return model
    }
}
