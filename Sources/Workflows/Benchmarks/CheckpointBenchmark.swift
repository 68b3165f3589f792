import Foundation
import Training
import Workload

/// `fleet bench checkpoint`: a checkpoint save against a plain write of as many bytes to the
/// same directory, and the training stall per save, synchronous and asynchronous.
public struct CheckpointBenchmark {
    public var model: ModelSpec
    /// Training steps per stall measurement (a save every 3 steps).
    public var steps: Int
    /// Timed saves (and as many plain writes).
    public var repetitions: Int

    public init(model: ModelSpec, steps: Int, repetitions: Int) {
        self.model = model
        self.steps = steps
        self.repetitions = repetitions
    }

    /// Medians, in seconds: one save of `bytes`, one plain write of as many, and a step without
    /// save work with the stall per save, synchronous and `--async-checkpoint`.
    public struct Result: Sendable {
        public var bytes = 0
        public var save = 0.0, plainWrite = 0.0
        public var sync = (step: 0.0, stall: 0.0), async = (step: 0.0, stall: 0.0)
    }

    /// Measures in `directory` (its files are left for the caller to remove).
    public func run(in directory: String) throws -> Result {
        var c = TrainingConfiguration(model: model)
        c.steps = steps
        c.evalBatches = 1
        let trainer = try Trainer(configuration: c, corpus: .builtIn())
        _ = trainer.trainStep(0)   // non-zero moments, as in a real save
        var result = Result()
        var plain: [Double] = [], saves: [Double] = []
        for repetition in 0..<repetitions {
            let start = ContinuousClock.now
            result.bytes = try trainer.distributed.saveCheckpointNow(step: repetition + 1, into: directory + "/checkpoints")
            saves.append((ContinuousClock.now - start).seconds)
            plain.append(try Self.plainWrite(bytes: result.bytes, to: directory + "/plain-\(repetition).bin"))
        }
        result.save = Self.median(saves)
        result.plainWrite = Self.median(plain)
        result.sync = try stall(async: false, directory: directory + "/sync")
        result.async = try stall(async: true, directory: directory + "/async")
        return result
    }

    /// Trains with a save every 3 steps; returns the median step without save work and the
    /// stall per save (its snapshot or write, plus publishing it on the following step).
    private func stall(async: Bool, directory: String) throws -> (step: Double, stall: Double) {
        var c = TrainingConfiguration(model: model)
        c.steps = 3 * max(1, steps / 3) + 1   // the last save is published inside the run
        c.evalBatches = 1
        let trainer = try Trainer(configuration: c, corpus: .builtIn())
        trainer.distributed.checkpointing = CheckpointPolicy(directory: directory, every: 3, keep: 2, async: async)
        var plainSteps: [Double] = [], total = 0.0
        trainer.run { m in
            total += m.checkpointSeconds
            if m.checkpointSeconds == 0 && m.step > 0 { plainSteps.append(m.seconds) }
        }
        return (Self.median(plainSteps), total / Double(c.steps / 3))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// Writes `bytes` to `path` in 8 MiB writes, then fsync: the baseline.
    static func plainWrite(bytes: Int, to path: String) throws -> Double {
        let chunk = [UInt8](repeating: 0x5a, count: 8 << 20)
        let start = ContinuousClock.now
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FleetError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var left = bytes
        while left > 0 {
            let n = chunk.withUnsafeBytes { Foundation.write(fd, $0.baseAddress!, min(left, chunk.count)) }
            guard n > 0 else { close(fd); throw FleetError("cannot write \(path): \(String(cString: strerror(errno)))", duringRun: true) }
            left -= n
        }
        fsync(fd)
        close(fd)
        return (ContinuousClock.now - start).seconds
    }
}
