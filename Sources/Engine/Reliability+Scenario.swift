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
}

extension Scenario {
    /// Bytes of one checkpoint: the weights in the training precision plus an fp32 master
    /// copy and two fp32 Adam moments.
    public var checkpointBytes: Double { Double(model.parameterCount) * Double(precision.bytes + (precision == .fp32 ? 8 : 12)) }

    /// The reliability model of this cluster and job: component counts from its sizes,
    /// checkpoint write, stall and reload times from its storage and fabric.
    /// With the step's report, an asynchronous save also costs the training traffic its
    /// write slows down (flow-level fidelity on a shared fabric).
    public func reliabilityModel(_ settings: ReliabilitySettings, step: StepReport? = nil) -> ReliabilityModel {
        let components = settings.components.map { spec -> ReliabilityModel.Component in
            let count = spec.scope == .gpu ? spec.count * gpus : spec.scope == .node ? spec.count * nodes : spec.count
            return ReliabilityModel.Component(name: spec.name, count: count, mttf: spec.mttf, distribution: spec.distribution)
        }
        let writers = Double(layout.tp * layout.pp), perGPU = checkpointBytes / writers
        let storage = self.storage ?? StorageSystem(aggregate: .gigabytesPerSecond(100), perClient: .gigabytesPerSecond(2), latency: SimTime(seconds: 0.01))
        let client = storage.sharedFabric ? min(storage.perClient.bytesPerSecond, scaleOut.bandwidth.bytesPerSecond) : storage.perClient.bytesPerSecond
        let rate = min(storage.aggregate.bytesPerSecond, writers * client)
        let write = storage.latency.seconds + checkpointBytes / rate
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
        model.spares = settings.spares
        model.stragglerFraction = settings.stragglerFraction
        model.stragglerFactor = settings.stragglerFactor
        model.gpus = gpus
        model.seed = settings.seed
        model.checkpointInterval = settings.checkpointInterval ?? model.youngDalyInterval
        return model
    }
}
