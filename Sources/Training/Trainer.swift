import Collectives
import Parallelism
import Tensor
import Workload

/// Training in this one process: the distributed trainer over a world of one rank (an
/// in-process transport that never sends), so one process and every layout run the same
/// code, with the same numerics, checkpoints and records.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let distributed: DistributedTrainer
    private let transport: LocalTransport
    public var model: GPT { distributed.model }
    public var data: DataLoader { distributed.data }
    /// Measured at start-up with the run's thread count: the denominator of MFU.
    public var gemmFLOPs: Double { distributed.gemmFLOPs }

    public init(configuration: TrainingConfiguration, corpus: Corpus) throws {
        self.configuration = configuration
        transport = LocalFabric(worldSize: 1).endpoint(rank: 0)
        distributed = try DistributedTrainer(configuration: configuration, layout: ParallelLayout(), transport: transport, corpus: corpus)
    }

    deinit { transport.shutdown() }

    /// Trains for `configuration.steps` steps, calling `report` after each.
    @discardableResult
    public func run(report: (StepMetrics) -> Void = { _ in }) -> TrainingSummary {
        // One rank never communicates, so nothing here can fail but a checkpoint write (none is set).
        try! distributed.run(report: { metrics, _ in report(metrics) })!
    }

    /// One optimizer step on the global batch of `step`.
    public func trainStep(_ step: Int) -> StepMetrics {
        let r = try! distributed.trainStep(step)
        return StepMetrics(step: step, loss: r.loss, learningRate: r.learningRate, gradientNorm: r.gradientNorm,
                           seconds: r.seconds, tokens: configuration.batch * configuration.sequence)
    }

    /// Mean loss over the fixed validation windows.
    public func validationLoss() -> Float { try! distributed.validationLoss() }
}
