import Foundation
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
        guard batch <= 1 << 24 else { throw Invalid.value("--batch \(batch) is more than fleet runs (at most 16,777,216 sequences)") }
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
    /// Model FLOP utilisation of this step against the run's stated peak (`TrainingSummary.peakFLOPs`; set by the trainer).
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
    /// The sgemm rate measured in this run, per thread × the cores in use.
    public let gemmFLOPs: Double
    /// The CPU's peak for the same cores (vector width × FMA units × clock), whatever the kernel; nil when the clock is unknown.
    public var cpuPeakFLOPs: Double?
    public var cpuPeakMFU: Double? { cpuPeakFLOPs.map { achievedFLOPs / $0 } }
    /// MFU's stated denominator: the higher of the CPU's peak at its nominal clock and the sgemm
    /// rate measured in this run (a turbo clock or a noisy measurement can put either below
    /// what the run reached, and a peak that a run exceeds is no peak), so MFU ≤ 100 %.
    public var peakFLOPs: Double { Self.statedPeak(cpu: cpuPeakFLOPs, sgemm: gemmFLOPs, achieved: achievedFLOPs) }
    /// Which figure `peakFLOPs` is: `cpu`, `sgemm`, or `achieved` when the run itself was fastest.
    public var peakSource: String {
        let peak = peakFLOPs
        return peak == (cpuPeakFLOPs ?? -1) ? "cpu" : peak == gemmFLOPs ? "sgemm" : "achieved"
    }
    public var mfu: Double { peakFLOPs > 0 ? achievedFLOPs / peakFLOPs : 0 }
    /// Achieved FLOP/s over the measured sgemm rate (can exceed 1: a ratio, not a utilisation).
    public var sgemmFraction: Double { gemmFLOPs > 0 ? achievedFLOPs / gemmFLOPs : 0 }

    public static func statedPeak(cpu: Double?, sgemm: Double, achieved: Double) -> Double { max(cpu ?? 0, sgemm, achieved) }
    public let losses: [Float]
    /// Ranks whose compute per step exceeds 1.5× the median of their pipeline stage's peers.
    public var stragglers: [Straggler] = []
    /// Each rank's BLAS kernel, by rank.
    public var blasKernels: [String] = []
    /// How many distinct hosts the ranks ran on, and how many rank pairs talked over each path (`shm`, `tcp`, …).
    public var hosts = 1
    public var transportPaths: [String: Int] = [:]
    /// The most any rank holds of parameters, gradients and optimizer state (ZeRO shards them):
    /// the elements it keeps × 4 bytes, and the pages of those buffers the kernel reports in memory.
    public var stateBytesPerRank = 0
    public var residentStateBytesPerRank = 0
    /// The most of those pages any rank had in memory at once during a step.
    public var peakResidentStateBytesPerRank = 0
    /// The most any rank allocates for its micro-batches' activations (sequence parallelism splits them).
    public var activationBytesPerRank = 0

    public init(finalLoss: Float, validationLoss: Float, tokensPerSecond: Double, achievedFLOPs: Double, gemmFLOPs: Double,
                cpuPeakFLOPs: Double?, losses: [Float], stragglers: [Straggler] = [], blasKernels: [String] = [],
                hosts: Int = 1, transportPaths: [String: Int] = [:], stateBytesPerRank: Int = 0, residentStateBytesPerRank: Int = 0,
                peakResidentStateBytesPerRank: Int = 0, activationBytesPerRank: Int = 0) {
        self.finalLoss = finalLoss
        self.validationLoss = validationLoss
        self.tokensPerSecond = tokensPerSecond
        self.achievedFLOPs = achievedFLOPs
        self.gemmFLOPs = gemmFLOPs
        self.cpuPeakFLOPs = cpuPeakFLOPs
        self.losses = losses
        self.stragglers = stragglers
        self.blasKernels = blasKernels
        self.hosts = hosts
        self.transportPaths = transportPaths
        self.stateBytesPerRank = stateBytesPerRank
        self.residentStateBytesPerRank = residentStateBytesPerRank
        self.peakResidentStateBytesPerRank = peakResidentStateBytesPerRank
        self.activationBytesPerRank = activationBytesPerRank
    }
}

/// A rank slower than the peers doing the same work.
public struct Straggler: Sendable, CustomStringConvertible {
    public let rank: Int
    public let secondsPerStep: Double
    /// The expected seconds per step: the peers' median, or (a stage without peers) its planned FLOPs at the ranks' median rate.
    public let peerMedian: Double
    /// What `peerMedian` is, in words.
    public var basis = "its peers' median"
    public init(rank: Int, secondsPerStep: Double, peerMedian: Double, basis: String = "its peers' median") {
        self.rank = rank
        self.secondsPerStep = secondsPerStep
        self.peerMedian = peerMedian
        self.basis = basis
    }
    public var slowdown: Double { secondsPerStep / peerMedian }
    public var description: String {
        String(format: "rank %d computes %.2f× %@ (%.1f ms vs %.1f ms per step)", rank, slowdown, basis, secondsPerStep * 1000, peerMedian * 1000)
    }
}

extension TrainingConfiguration {
    /// What training holds in memory, summed over `ranks` processes on one host: each step's
    /// cached activations (per token and layer: the block's inputs, q/k/v, attention output,
    /// MLP hidden twice and a row of attention scores per head, and the logits and their
    /// gradient; measured at 14,100 floats per gpt-tiny token against 13,300 here, so 10 % is
    /// added), and per rank the weights, gradients and AdamW moments plus the process itself.
    public func memoryEstimate(ranks: Int) -> Bytes {
        let m = model
        let perToken = Double(m.layers) * Double(9 * m.dModel + 2 * m.mlpHidden + 2 * m.heads * sequence) + 2 * Double(m.vocabulary)
        let activations = 1.1 * perToken * 4 * Double(batch) * Double(sequence)
        let perRank = 16 * Double(m.parameterCount) + 64 * 1_048_576
        return Bytes(Int(min(activations + Double(max(1, ranks)) * perRank, 1e18)))
    }

    /// Refuses a run whose estimate exceeds 90 % of `available` bytes, before any step.
    public func checkMemory(ranks: Int, available: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        let need = memoryEstimate(ranks: ranks)
        let limit = 0.9 * Double(available)
        guard need.value > limit else { return }
        let gib = { (x: Double) in String(format: "%.1f GiB", x / 1_073_741_824) }
        throw Invalid.value("this run needs about \(gib(need.value)) of memory (batch \(batch) × \(sequence) tokens of \(model.name)"
                            + (ranks > 1 ? " over \(ranks) ranks" : "") + "), more than this machine's \(gib(Double(available))): "
                            + "lower --batch or --seq (or spread the ranks over more hosts)")
    }
}
