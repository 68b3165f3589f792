import Engine
import Parallelism
import Training
import Workload

/// Real one-process training steps at the calibration batch, a few at a time between
/// calibrate's kernel rounds: how their forward and backward compare with the sum of their
/// kernels measured alone in the same round (`in_step`), and what the rest of a step
/// (optimizer, loss) costs.
public final class InStepSampler {
    private let trainer: Trainer
    private let work: KernelWork
    private let perRound: Int
    private var step = 0
    /// Per sampled step: forward + backward over its round's kernels alone, and its seconds.
    public private(set) var ratios: [Double] = [], compute: [Double] = [], rest: [Double] = []

    /// Builds the trainer for `rounds` samples of `perRound` steps and takes two steps to warm
    /// it (not sampled).
    public init(model: ModelSpec, batch: Int, rounds: Int, perRound: Int = 4, warmup: Int = 2) throws {
        self.perRound = perRound
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = batch
        configuration.steps = warmup + rounds * perRound
        configuration.threads = 1
        trainer = try Trainer(configuration: configuration, corpus: Corpus.builtIn())
        let stages = KernelWork.stages(model: model, layout: ParallelLayout(), batch: batch, sequence: model.context)[0]
        work = stages.forward + stages.backward
        for _ in 0..<warmup { try takeStep() }
    }

    /// One more step, not sampled (`CoreContention` times its compute on each core).
    @discardableResult
    public func takeStep() throws -> DistributedTrainer.StepResult {
        defer { step += 1 }
        return try trainer.distributed.trainStep(step)
    }

    /// Takes a round's steps, each set against `kernels` (the round just measured).
    public func sample(against kernels: KernelCalibration) throws {
        let alone = kernels.seconds(work)
        for _ in 0..<perRound {
            let r = try takeStep()
            ratios.append(r.computeSeconds / alone)
            compute.append(r.computeSeconds)
            rest.append(r.seconds - r.computeSeconds)
        }
    }
}
