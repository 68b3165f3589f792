import Collectives
import Parallelism
import Tensor

extension DistributedTrainer {
    /// What one step measured on this rank.
    public struct StepResult: Sendable {
        /// The global loss (mean over the whole global batch); valid on the reporting rank.
        public let loss: Float
        public let gradientNorm: Float
        public let learningRate: Float
        public let seconds: Double
        public let computeSeconds: Double
        public let communicationSeconds: Double
        /// What this rank sent in the step: all-reduces and floats over the tp and dp groups, pipeline messages and floats.
        public let traffic: Traffic
    }

    /// Communication counted by kind, so tests can pin exact numbers per step.
    public struct Traffic: Sendable, Equatable {
        public var tensorAllReduces = 0, tensorFloats = 0
        public var dataAllReduces = 0, dataFloats = 0
        public var pipelineMessages = 0, pipelineFloats = 0
    }

    /// One optimizer step on the global batch of `step`.
    public func trainStep(_ step: Int) throws -> StepResult {
        let c = configuration
        let start = ContinuousClock.now
        var compute: Duration = .zero
        let rows = samplesPerMicrobatch * c.sequence, globalRows = c.batch * c.sequence
        while microActivations.count < layout.microbatches {
            microActivations.append(model.makeActivations(batch: samplesPerMicrobatch, sequence: c.sequence))
        }
        model.zeroGradients()
        let tensorBefore = (model.shard.allReduces, model.shard.reducedFloats)
        var traffic = Traffic()
        var lossSum: Float = 0
        var sends: [Request] = []
        let pp = groups.pp, width = rows * c.model.dModel
        for action in layout.pipeline.actions[stage.index] {
            switch action {
            case let .receiveActivation(i, from):
                let a = microActivations[i]
                let request = try pp.irecv(into: UnsafeMutableRawBufferPointer(start: a.residual[stage.layers.lowerBound].pointer, count: width * 4),
                                           from: from, tag: tag(microbatch: i, fromStage: from, gradient: false))
                try transport.wait(request, operation: "pipeline receive of activations for micro-batch \(i) from stage \(from)")
            case let .receiveGradient(i, from):
                let a = microActivations[i]
                let request = try pp.irecv(into: UnsafeMutableRawBufferPointer(start: a.dResidual.pointer, count: width * 4),
                                           from: from, tag: tag(microbatch: i, fromStage: from, gradient: true))
                try transport.wait(request, operation: "pipeline receive of gradients for micro-batch \(i) from stage \(from)")
            case .forward(let i):
                let began = ContinuousClock.now
                let a = microActivations[i]
                let (tokens, targets) = data.trainingBatch(step: step, batch: c.batch, samples: samples(microbatch: i))
                if stage.isFirst { tokens.withUnsafeBufferPointer { a.tokens.update(from: $0.baseAddress!, count: tokens.count) } }
                try model.forward(a, layers: stage.layers, embed: stage.isFirst, head: stage.isLast)
                if stage.isLast {
                    targets.withUnsafeBufferPointer { a.targets.update(from: $0.baseAddress!, count: targets.count) }
                    let microLoss = CrossEntropy.forwardBackward(logits: a.logits.pointer, targets: a.targets, losses: a.losses.pointer,
                                                                 rows: rows, vocabulary: c.model.vocabulary, gradient: true,
                                                                 gradientRows: globalRows)
                    lossSum += microLoss * Float(rows) / Float(globalRows)
                }
                compute += ContinuousClock.now - began
            case .backward(let i):
                let began = ContinuousClock.now
                if stage.isFirst {
                    let (tokens, _) = data.trainingBatch(step: step, batch: c.batch, samples: samples(microbatch: i))
                    tokens.withUnsafeBufferPointer { microActivations[i].tokens.update(from: $0.baseAddress!, count: tokens.count) }
                }
                try model.backward(microActivations[i], layers: stage.layers, embed: stage.isFirst, head: stage.isLast)
                compute += ContinuousClock.now - began
            case let .sendActivation(i, to):
                let a = microActivations[i]
                sends.append(try pp.isend(UnsafeRawBufferPointer(start: a.residual[stage.layers.upperBound].pointer, count: width * 4),
                                          to: to, tag: tag(microbatch: i, fromStage: stage.index, gradient: false)))
                traffic.pipelineMessages += 1
                traffic.pipelineFloats += width
            case let .sendGradient(i, to):
                let a = microActivations[i]
                sends.append(try pp.isend(UnsafeRawBufferPointer(start: a.dResidual.pointer, count: width * 4),
                                          to: to, tag: tag(microbatch: i, fromStage: stage.index, gradient: true)))
                traffic.pipelineMessages += 1
                traffic.pipelineFloats += width
            case .optimizerStep:
                break
            }
        }
        try transport.wait(sends, operation: "pipeline sends of step \(step)")
        traffic.tensorAllReduces = model.shard.allReduces - tensorBefore.0
        traffic.tensorFloats = model.shard.reducedFloats - tensorBefore.1
        (traffic.dataAllReduces, traffic.dataFloats) = try synchronizeGradients()
        let norm = try globalGradientNorm()
        if c.gradientClip > 0 && norm > c.gradientClip {
            let scale = c.gradientClip / (norm + 1e-6)
            for range in stage.owned { for i in range { model.gradients.pointer[i] *= scale } }
        }
        let rate = c.schedule.rate(at: step)
        optimizer.begin()
        for range in ranges(stage: stage, shard: coordinates.tp, counted: false) {
            // Weight decay applies to matrices only, as in the single-process trainer.
            let entry = model.layout.entries.last { $0.offset <= range.lowerBound }!
            optimizer.update(params: model.parameters.pointer + range.lowerBound, grads: model.gradients.pointer + range.lowerBound,
                             m: firstMoment.pointer + range.lowerBound, v: secondMoment.pointer + range.lowerBound,
                             count: range.count, learningRate: rate, decay: entry.decay)
        }
        var loss = [stage.isLast ? lossSum : 0]
        if stage.isLast { try groups.dp.allReduce(&loss) }
        let elapsed = (ContinuousClock.now - start).seconds
        return StepResult(loss: loss[0], gradientNorm: norm, learningRate: rate, seconds: elapsed,
                          computeSeconds: compute.seconds, communicationSeconds: max(0, elapsed - compute.seconds), traffic: traffic)
    }

    /// Sums the tied embedding's gradient over the first and last stage, then every owned
    /// gradient over the dp group, bucket by bucket. Returns the dp all-reduces and floats.
    func synchronizeGradients() throws -> (Int, Int) {
        if let embedding = groups.embedding {
            let wte = model.layout.entry("wte")
            try embedding.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + wte.offset, count: wte.count))
        }
        guard layout.dp > 1 else { return (0, 0) }
        let bucket = max(1, bucketBytes / 4)
        var calls = 0, floats = 0
        for range in stage.owned {
            for start in stride(from: range.lowerBound, to: range.upperBound, by: bucket) {
                let end = min(start + bucket, range.upperBound)
                try groups.dp.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + start, count: end - start))
                calls += 1
                floats += end - start
            }
        }
        return (calls, floats)
    }

    /// √(Σ g²) over every parameter of the model, each counted once across the pipeline and
    /// the tensor-parallel shards of this replica.
    func globalGradientNorm() throws -> Float {
        var local: Double = 0
        for range in ranges(stage: stage, shard: coordinates.tp, counted: true) {
            for i in range { let g = Double(model.gradients.pointer[i]); local += g * g }
        }
        var total = [Float(local)]
        try groups.replica.allReduce(&total)
        return total[0].squareRoot()
    }
}
