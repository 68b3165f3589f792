import Parallelism
import Workload

/// What simulating one training step found.
public struct StepReport: Sendable {
    public struct Breakdown: Sendable, Hashable {
        /// On the slowest stage: forward and backward kernels.
        public var compute = SimTime.zero
        /// Tensor-parallel all-reduces (inside forward and backward, not overlapped).
        public var tensorParallel = SimTime.zero
        /// A mixture of experts' token all-to-alls over the expert-parallel group (inside the passes, not overlapped).
        public var expertAllToAll = SimTime.zero
        /// Context parallelism's ring attention traffic the attention kernels did not hide.
        public var contextParallel = SimTime.zero
        /// Waiting for pipeline activations and gradients: the bubble and transfers.
        public var pipelineWait = SimTime.zero
        /// Data-parallel gradient communication left after the backward pass.
        public var dataParallelExposed = SimTime.zero
        public var optimizer = SimTime.zero
        /// Checkpoint stall per step (a save's stall divided by the steps between saves),
        /// including, for async writes on a shared fabric, the training traffic they slow down.
        public var checkpoint = SimTime.zero
        /// Of one save: the write's duration, and what it costs data-parallel traffic while it lasts.
        public var checkpointWrite = SimTime.zero
        public var checkpointContention = SimTime.zero
        /// The input pipeline's stall: reading the next batch took longer than the step it hid behind.
        public var dataStall = SimTime.zero
    }

    public struct Span: Sendable, Hashable {
        public let stage: Int, name: String, lane: String, start: SimTime, end: SimTime
    }

    public struct LinkLoad: Sendable, Hashable {
        public let link: LinkID, bytes: Double, utilization: Double
    }

    public let stepTime: SimTime
    public let tokensPerSecond: Double
    public let mfu: Double
    public let breakdown: Breakdown
    /// Idle share of the pipeline schedule, as `fleet plan` states it: per stage, the time
    /// neither computing, communicating nor updating until the last stage finishes (waits for
    /// messages and the drain), over that idle time plus the forward and backward passes.
    public let bubbleFraction: Double
    public let memory: MemoryEstimate
    public let busiestLinks: [LinkLoad]
    public let spans: [Span]
    public internal(set) var events: Int
    public let fidelity: String
    /// How the numbers were obtained (which symmetries were used).
    public internal(set) var reductions: String
    /// On an asymmetric fleet: the rank that sets the step, why, and what each asymmetric
    /// element alone adds to the step (see `StepSimulator.run()`).
    public var slowestRank: Int?
    public var criticalPath: String?
    public var elementDelays: [ElementDelay] = []

    public struct ElementDelay: Sendable, Hashable {
        public let element: String
        public let delay: SimTime
    }
    /// Per pipeline stage, what one of its ranks holds and sends in a step (from the shard plan).
    public var stages: [StageTraffic] = []
    /// With `algorithm: auto`, which algorithm each distinct collective of the step got.
    public var collectiveChoices: [String] = []
    /// What one GPU of each pipeline stage holds (`memory` is the largest).
    public internal(set) var memoryStages: [MemoryEstimate] = []

    /// A size the way the choices name it (decimal units, as buckets are given).
    static func format(bytes: Double) -> String {
        bytes >= 1e9 ? String(format: "%.1f GB", bytes / 1e9) : bytes >= 1e6 ? String(format: "%.1f MB", bytes / 1e6) : String(format: "%.1f kB", bytes / 1e3)
    }

    /// Why this step's figures cannot stand, or nil: a duration past `SimTime.limit` (an
    /// efficiency, bandwidth or latency far outside any real machine's) saturated.
    public var problem: String? {
        let b = breakdown
        let parts = [stepTime, b.compute, b.tensorParallel, b.expertAllToAll, b.contextParallel, b.pipelineWait, b.dataParallelExposed, b.optimizer, b.checkpoint, b.dataStall]
        guard parts.contains(where: \.isSaturated) else { return nil }
        return String(format: "the simulated step would last more than %.0e s (%.1f years): check the device's efficiency and peak, and the "
                      + "bandwidths and latencies of its links and storage", SimTime.limit.seconds, SimTime.limit.seconds / 31_557_600)
    }

    /// One rank of a stage in one step: parameters held, FLOPs, and bytes it contributes to the
    /// data-parallel gradient sum, the tensor-parallel all-reduces and pipeline messages.
    public struct StageTraffic: Sendable, Hashable {
        public let parameters: Int
        /// Matrix-product FLOPs of the rank's whole step (every micro-batch, recomputation included).
        public let flops: FLOPs
        public let dataParallelBytes: Bytes
        public let tensorParallelBytes: Bytes
        public let pipelineBytes: Bytes
    }
}
