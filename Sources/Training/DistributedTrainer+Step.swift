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
                model.forward(a, layers: stage.layers, embed: stage.isFirst, head: stage.isLast)
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
                model.backward(microActivations[i], layers: stage.layers, embed: stage.isFirst, head: stage.isLast)
                compute += ContinuousClock.now - began
            case let .sendActivation(i, to):
                let a = microActivations[i]
                sends.append(try pp.isend(UnsafeRawBufferPointer(start: a.residual[stage.layers.upperBound].pointer, count: width * 4),
                                          to: to, tag: tag(microbatch: i, fromStage: stage.index, gradient: false)))
            case let .sendGradient(i, to):
                let a = microActivations[i]
                sends.append(try pp.isend(UnsafeRawBufferPointer(start: a.dResidual.pointer, count: width * 4),
                                          to: to, tag: tag(microbatch: i, fromStage: stage.index, gradient: true)))
            case .optimizerStep:
                break
            }
        }
        try transport.wait(sends, operation: "pipeline sends of step \(step)")
        try synchronizeGradients()
        let norm = try globalGradientNorm()
        if c.gradientClip > 0 && norm > c.gradientClip {
            let scale = c.gradientClip / (norm + 1e-6)
            for range in stage.owned { for i in range { model.gradients.pointer[i] *= scale } }
        }
        let rate = c.schedule.rate(at: step)
        optimizer.begin()
        for entry in model.layout.entries where stage.owned.contains(where: { $0.contains(entry.offset) }) {
            optimizer.update(params: model.parameters.pointer + entry.offset, grads: model.gradients.pointer + entry.offset,
                             m: firstMoment.pointer + entry.offset, v: secondMoment.pointer + entry.offset,
                             count: entry.count, learningRate: rate, decay: entry.decay)
        }
        var loss = [stage.isLast ? lossSum : 0]
        if stage.isLast { try groups.dp.allReduce(&loss) }
        let elapsed = (ContinuousClock.now - start).seconds
        return StepResult(loss: loss[0], gradientNorm: norm, learningRate: rate, seconds: elapsed,
                          computeSeconds: compute.seconds, communicationSeconds: max(0, elapsed - compute.seconds))
    }

    /// Sums the tied embedding's gradient over the first and last stage, then every owned
    /// gradient over the dp group, bucket by bucket.
    func synchronizeGradients() throws {
        if let embedding = groups.embedding {
            let wte = model.layout.entry("wte")
            try embedding.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + wte.offset, count: wte.count))
        }
        guard layout.dp > 1 else { return }
        let bucket = max(1, bucketBytes / 4)
        for range in stage.owned {
            for start in stride(from: range.lowerBound, to: range.upperBound, by: bucket) {
                let end = min(start + bucket, range.upperBound)
                try groups.dp.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + start, count: end - start))
            }
        }
    }

    /// √(Σ g²) over every parameter of the model, each counted once across the pipeline.
    func globalGradientNorm() throws -> Float {
        var local: Double = 0
        for range in stage.counted {
            for i in range { let g = Double(model.gradients.pointer[i]); local += g * g }
        }
        var total = [Float(local)]
        try groups.pp.allReduce(&total)
        return total[0].squareRoot()
    }
}
