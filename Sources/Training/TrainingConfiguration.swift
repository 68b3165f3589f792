import Tensor
import Workload

/// Everything that determines a single-process training run.
public struct TrainingConfiguration: Sendable {
    public var model: ModelSpec
    public var steps = 200
    public var batch = 8
    public var sequence: Int
    public var learningRate: Float = 3e-3
    public var warmupSteps = 20
    public var weightDecay: Float = 0.1
    public var gradientClip: Float = 1.0
    public var seed: UInt64 = 1
    public var threads = 1
    /// Validate every this many steps (0: only at the end).
    public var evalEvery = 0
    public var evalBatches = 8
    /// Every layout reproduces the single-process bits (see `DeterministicMode`).
    public var deterministic = false

    public init(model: ModelSpec) {
        self.model = model
        sequence = model.context
    }

    public enum Invalid: Error, CustomStringConvertible {
        case value(String)
        public var description: String { switch self { case .value(let s): return s } }
    }

    /// Rejects sizes that cannot train.
    public func validate() throws {
        func positive(_ value: Int, _ flag: String) throws {
            guard value > 0 else { throw Invalid.value("\(flag) must be positive (got \(value))") }
        }
        try positive(steps, "--steps")
        try positive(batch, "--batch")
        try positive(sequence, "--seq")
        try positive(threads, "--threads")
        try positive(evalBatches, "--eval-batches")
        // Step counts become Float learning-rate positions and Int32 message tags' bounds; a
        // hundred million steps of even gpt-tiny is years on a laptop.
        guard steps <= 100_000_000 else { throw Invalid.value("--steps \(steps) is more than fleet runs (at most 100,000,000)") }
        guard threads <= 1024 else { throw Invalid.value("--threads \(threads) is more than fleet runs (at most 1,024)") }
        guard sequence <= model.context else {
            throw Invalid.value("--seq \(sequence) is longer than \(model.name)'s context of \(model.context) tokens")
        }
        guard learningRate > 0, learningRate.isFinite else { throw Invalid.value("--lr must be a positive number") }
        guard warmupSteps >= 0, evalEvery >= 0 else { throw Invalid.value("--warmup and --eval-every must not be negative") }
    }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, warmupSteps: min(warmupSteps, steps), totalSteps: steps)
    }
}

/// What one training step reports.
public struct StepMetrics: Sendable {
    public let step: Int
    public let loss: Float
    public let learningRate: Float
    public let gradientNorm: Float
    public let seconds: Double
    public let tokens: Int
    public var tokensPerSecond: Double { Double(tokens) / seconds }
    public var validationLoss: Float?
    /// Model FLOP utilisation of this step against the run's measured sgemm peak (set by the trainer).
    public var mfu: Double?
    /// The same against the CPU's kernel-independent peak (`CPUFeatures.peakFLOPs`), when its clock is known.
    public var cpuPeakMFU: Double?
    /// Time this rank spent on checkpoint saves after the step (the stall; async saves only copy).
    public var checkpointSeconds: Double = 0
    /// Checksums of the parameter tensors after the step, in layout order (when recorded).
    public var checksums: [UInt64]?
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public let finalLoss: Float
    public let validationLoss: Float
    public let tokensPerSecond: Double
    public let achievedFLOPs: Double
    /// The sgemm rate measured in this run, per thread × the cores in use: MFU's denominator.
    public let gemmFLOPs: Double
    public var mfu: Double { gemmFLOPs > 0 ? achievedFLOPs / gemmFLOPs : 0 }
    /// The CPU's peak for the same cores (vector width × FMA units × clock), whatever the kernel; nil when the clock is unknown.
    public var cpuPeakFLOPs: Double?
    public var cpuPeakMFU: Double? { cpuPeakFLOPs.map { achievedFLOPs / $0 } }
    public let losses: [Float]
    /// Ranks whose compute per step exceeds 1.5× the median of their pipeline stage's peers.
    public var stragglers: [Straggler] = []
    /// Each rank's BLAS kernel, by rank.
    public var blasKernels: [String] = []
}

/// A rank slower than the peers doing the same work.
public struct Straggler: Sendable, CustomStringConvertible {
    public let rank: Int
    public let secondsPerStep: Double
    public let peerMedian: Double
    public var slowdown: Double { secondsPerStep / peerMedian }
    public var description: String {
        String(format: "rank %d computes %.2f× its peers' median (%.1f ms vs %.1f ms per step)", rank, slowdown, secondsPerStep * 1000, peerMedian * 1000)
    }
}
