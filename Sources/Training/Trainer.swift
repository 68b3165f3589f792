import Tensor
import Workload

/// The single-process training loop: batches, forward/backward, clipping, AdamW, schedule, validation.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: GPT
    public let data: DataLoader
    private var optimizer: AdamW
    private let firstMoment: FloatBuffer
    private let secondMoment: FloatBuffer
    /// Measured at start-up with the run's thread count: the denominator of MFU.
    public private(set) var gemmFLOPs: Double = 0

    public init(configuration: TrainingConfiguration, corpus: Corpus) throws {
        try configuration.validate()
        self.configuration = configuration
        Parallel.threads = configuration.threads
        BLAS.setThreads(1)
        model = GPT(spec: configuration.model, seed: configuration.seed)
        data = try DataLoader(corpus: corpus, sequence: configuration.sequence, seed: configuration.seed)
        optimizer = AdamW(weightDecay: configuration.weightDecay)
        firstMoment = FloatBuffer(count: model.layout.count)
        secondMoment = FloatBuffer(count: model.layout.count)
    }

    /// Trains for `configuration.steps` steps, calling `report` after each.
    @discardableResult
    public func run(report: (StepMetrics) -> Void = { _ in }) -> TrainingSummary {
        let c = configuration
        gemmFLOPs = BLAS.measureGEMMRate(threads: c.threads)
        let flopsPerToken = c.model.trainingFLOPsPerToken(sequence: c.sequence)
        var losses: [Float] = []
        var trainingSeconds = 0.0
        var trainedTokens = 0
        for step in 0..<c.steps {
            var metrics = trainStep(step)
            losses.append(metrics.loss)
            // The first step pays for allocation and page faults; it is not representative.
            if step > 0 || c.steps == 1 {
                trainingSeconds += metrics.seconds
                trainedTokens += metrics.tokens
            }
            if c.evalEvery > 0 && (step + 1) % c.evalEvery == 0 && step + 1 < c.steps {
                metrics.validationLoss = validationLoss()
            }
            metrics.mfu = metrics.tokensPerSecond * flopsPerToken / gemmFLOPs
            report(metrics)
        }
        let tokensPerSecond = trainingSeconds > 0 ? Double(trainedTokens) / trainingSeconds : 0
        return TrainingSummary(finalLoss: losses.last ?? .nan, validationLoss: validationLoss(),
                               tokensPerSecond: tokensPerSecond, achievedFLOPs: tokensPerSecond * flopsPerToken,
                               gemmFLOPs: gemmFLOPs, losses: losses)
    }

    /// One optimizer step on the global batch of `step`.
    public func trainStep(_ step: Int) -> StepMetrics {
        let c = configuration
        let start = ContinuousClock.now
        let (tokens, targets) = data.trainingBatch(step: step, batch: c.batch)
        model.zeroGradients()
        let loss = model.step(tokens: tokens, targets: targets, batch: c.batch, sequence: c.sequence, backward: true)
        let norm = clipGradientNorm(model.gradients.pointer, count: model.layout.count, maxNorm: c.gradientClip)
        let rate = c.schedule.rate(at: step)
        applyOptimizer(learningRate: rate)
        let elapsed = ContinuousClock.now - start
        let (s, atto) = elapsed.components
        return StepMetrics(step: step, loss: loss, learningRate: rate, gradientNorm: norm,
                           seconds: Double(s) + Double(atto) * 1e-18, tokens: c.batch * c.sequence)
    }

    private func applyOptimizer(learningRate: Float) {
        optimizer.begin()
        for entry in model.layout.entries {
            optimizer.update(params: model.parameters.pointer + entry.offset, grads: model.gradients.pointer + entry.offset,
                             m: firstMoment.pointer + entry.offset, v: secondMoment.pointer + entry.offset,
                             count: entry.count, learningRate: learningRate, decay: entry.decay)
        }
    }

    /// Mean loss over the fixed validation windows.
    public func validationLoss() -> Float {
        let c = configuration
        var total: Float = 0
        for i in 0..<c.evalBatches {
            let (tokens, targets) = data.validationBatch(i, of: c.evalBatches, batch: c.batch)
            total += model.step(tokens: tokens, targets: targets, batch: c.batch, sequence: c.sequence, backward: false)
        }
        return total / Float(c.evalBatches)
    }
}
