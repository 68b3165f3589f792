import FaultInjection
import Foundation
import Parallelism
import Training

/// `fleet chaos`: a fault-free reference run, then runs that each suffer one random fault
/// (drawn from `seed`) under deterministic training with checkpoints, checksums, replica
/// checks and restarts. A run passes when it finishes with the reference's exact parameters
/// and every complete checkpoint it left verifies. Runs are real `fleet train` processes;
/// what happened in each is read from its event channel.
public struct ChaosCampaign {
    public var model: String
    public var layout: ParallelLayout
    public var steps: Int
    public var seed: UInt64
    public var kinds: [Fault.Kind]
    public var directory: String

    public init(model: String, layout: ParallelLayout, steps: Int, seed: UInt64, kinds: [Fault.Kind], directory: String) throws {
        guard steps >= 8 else { throw FleetError("--steps must be at least 8 (faults land from step 3, checkpoints every 5 steps)") }
        guard !kinds.isEmpty else { throw FleetError("--kinds names no fault kind") }
        self.model = model
        self.layout = layout
        self.steps = steps
        self.seed = seed
        self.kinds = kinds
        self.directory = directory
    }

    var baseArguments: [String] {
        ["train", model, "--deterministic", "--steps", "\(steps)", "--seq", "64", "--eval-batches", "1", "--log-every", "1000",
         "--dp", "\(layout.dp)", "--tp", "\(layout.tp)", "--pp", "\(layout.pp)", "--microbatches", "\(layout.microbatches)",
         "--schedule", layout.schedule.rawValue]
    }

    /// Runs the fault-free reference and returns its final parameters.
    public func reference() throws -> [Float] {
        let run = try ChildProcess.fleet(baseArguments + ["--run-dir", directory + "/reference"])
        guard run.status == 0 else { throw FleetError("the fault-free reference failed: \(run.stderr.suffix(800))", duringRun: true) }
        return try WeightsFile.load(directory + "/reference/final.weights").model.parameters.array
    }

    /// The `count` faults of this campaign, as `--inject` specs: the same for the same seed.
    public func faults(_ count: Int) -> [(kind: Fault.Kind, rank: Int, spec: String)] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func draw(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        return (0..<count).map { _ in
            let kind = kinds[draw(kinds.count)], rank = draw(layout.worldSize), step = 3 + draw(steps - 5)
            var spec = "\(kind.rawValue):rank=\(rank),step=\(step)"
            switch kind {
            case .slow: spec = "slow:rank=\(rank),factor=4,steps=2-\(steps)"
            case .delay: spec = "delay:rank=\(rank),ms=20,steps=\(step)-\(step + 2)"
            case .bitflip: spec += [",target=gradient", ",target=parameter", ",target=parameter,bit=\(2 + draw(20))"][draw(3)]
            case .checkpoint: spec = "checkpoint:rank=\(rank),step=\(5 * (1 + draw(max(1, (steps - 1) / 5)))),mode=\(["full", "torn"][draw(2)])"
            default: break
            }
            return (kind, rank, spec)
        }
    }

    /// Run `number` with one fault, judged against the reference's parameters.
    public func run(_ number: Int, fault: (kind: Fault.Kind, rank: Int, spec: String), reference: [Float]) throws -> ChaosOutcome {
        let runDir = directory + "/run-\(number)"
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let channel = EventChannel(path: runDir + "/events.jsonl")
        let child = try ChildProcess.fleet(baseArguments + ["--checkpoint-dir", runDir + "/ck", "--checkpoint-every", "5", "--max-restarts", "2",
                                                            "--timeout", "3", "--checksums", "--check-replicas", "1", "--inject", fault.spec,
                                                            "--run-dir", runDir + "/run"],
                                           environment: [EventChannel.variable: channel.path])
        let events = channel.read()
        var outcome = ChaosOutcome(run: number, fault: fault.spec)
        let failures = events.filter { $0.event == .attemptFailed }
        if let first = failures.first {
            outcome.detected = first.cause?.title ?? "failure"
            outcome.detectionSeconds = first.sinceLastStepSeconds
        } else if fault.kind == .slow {
            let named = events.contains { $0.event == .straggler && $0.rank == fault.rank }
            outcome.detected = named ? "straggler rank \(fault.rank)" : "straggler not named"
            outcome.missedDetection = !named
        } else {
            outcome.detected = "no effect on the result"
        }
        outcome.recomputedSteps = events.last { $0.event == .finished }?.recomputedSteps ?? 0
        let weights = try? WeightsFile.load(runDir + "/run/final.weights").model.parameters.array
        // Bit for bit (== on floats would let -0 pass for 0 and fail NaN against NaN).
        outcome.recovered = child.status == 0 && weights?.map(\.bitPattern) == reference.map(\.bitPattern)
        let checkpoints = CheckpointStore(directory: runDir + "/ck").complete()
        outcome.checkpointsIntact = checkpoints.allSatisfy { (try? CheckpointStore.verify($0.path)) != nil }
        if !outcome.recovered { outcome.stderr = String(child.stderr.suffix(600)) }
        return outcome
    }
}

/// One chaos run: its fault, how it was detected, and whether it recovered bit for bit.
public struct ChaosOutcome: Sendable {
    public var run: Int
    public var fault: String
    public var detected = ""
    public var detectionSeconds: Double?
    public var missedDetection = false
    public var recovered = false
    public var recomputedSteps = 0
    public var checkpointsIntact = true
    /// The end of the run's error output when it did not recover.
    public var stderr = ""

    public var passed: Bool { recovered && checkpointsIntact && !missedDetection }
}
