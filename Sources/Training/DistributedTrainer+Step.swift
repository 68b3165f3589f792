import Collectives
import OpLog
import FaultInjection
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
        /// Forward and backward compute, without the tensor-parallel all-reduces inside them.
        public let computeSeconds: Double
        /// Tensor-parallel all-reduces (inside forward and backward).
        public let tensorSeconds: Double
        /// Expert parallelism's token all-to-alls (inside forward and backward).
        public var expertSeconds: Double = 0
        /// Context parallelism's ring passes and exchanges (inside forward and backward).
        public var contextSeconds: Double = 0
        /// Waiting for pipeline activations and gradients: the bubble and transfer time.
        public let pipelineWaitSeconds: Double
        /// Data-parallel gradient communication left after the backward pass (not overlapped).
        public let exposedDataSeconds: Double
        /// Everything but compute: communication and waiting, plus norms, the optimizer and the loss all-reduce.
        public var communicationSeconds: Double { max(0, seconds - computeSeconds) }
        /// What this rank sent in the step: all-reduces and floats over the tp and dp groups, pipeline messages and floats.
        public let traffic: Traffic
        /// A mixture of experts' routing over the whole global batch (every rank has it).
        public var experts: ExpertStatistics? = nil
    }

    /// Communication counted by kind, so tests can pin exact numbers per step.
    public struct Traffic: Sendable, Equatable {
        public var tensorAllReduces = 0, tensorFloats = 0
        public var dataAllReduces = 0, dataFloats = 0
        public var pipelineMessages = 0, pipelineFloats = 0
        /// Expert parallelism's all-to-alls and the floats this rank handed to them.
        public var expertExchanges = 0, expertFloats = 0
        /// Context parallelism's K/V passes and gradient reduce-scatters (deterministic mode: its
        /// moves between position and sample splits) and the floats this rank handed to them.
        public var contextExchanges = 0, contextFloats = 0
    }

    /// One optimizer step on the global batch of `step`; while tracing, every op it runs is
    /// logged and becomes a trace event.
    public func trainStep(_ step: Int) throws -> StepResult {
        // The kernel width is this thread's, for this call: ranks on threads of one process keep their own.
        try Parallel.with(threads: configuration.threads) { try recordedStep(step) }
    }

    private func recordedStep(_ step: Int) throws -> StepResult {
        guard let recording else { return try runStep(step) }
        let log = OpLog(timed: true)
        defer {
            tracedSteps += 1
            for op in log.ops { recording.record(op, rank: transport.rank, step: step) }
        }
        return try OpLog.with(log) { try runStep(step) }
    }

    func runStep(_ step: Int) throws -> StepResult {
        let c = configuration
        let start = ContinuousClock.now
        var compute: Duration = .zero
        // Fault injection: the decorator and the injector act on this step (counted from 1).
        (transport as? FaultyTransport)?.step = step + 1
        injector?.reach(step: step + 1, phase: .forward)
        let rows = microbatchSequences * model.context.localSequence(c.sequence), globalRows = c.batch * c.sequence
        while microActivations.count < layout.microbatches {
            let a = model.makeActivations(batch: microbatchSequences, sequence: c.sequence)
            a.lossSequences = c.batch
            microActivations.append(a)
        }
        if !holdingApplied { releaseUnheld() }
        model.zeroGradients(in: heldGradientRanges)
        stepPeakResident = 0
        let tensorBefore = (model.shard.allReduces, model.shard.reducedFloats, model.shard.reduceTime)
        let exchanges = model.expertShard, exchangesBefore = (exchanges.exchanges, exchanges.exchangedFloats, exchanges.exchangeTime)
        let ring = model.context, ringBefore = (ring.exchanges, ring.exchangedFloats, ring.exchangeTime)
        var pipelineWait: Duration = .zero
        let sharded = zero >= 1
        let deterministic = c.deterministic
        if deterministic && orderedGradients == nil {
            orderedGradients = OrderedGradients(tree: batchTree, ranges: denseRanges,
                                                headCount: stage.isLast ? model.layout.entry("wte").count : 0,
                                                chunkSpans: stage.chunks.map(\.spans))
        }
        var sampleLosses = [Float](repeating: 0, count: deterministic ? c.batch : 0)
        // The plan's schedule blocks, in order; its gradient sum and update follow the loop.
        let schedule = program.blocks.compactMap { block -> (PipelineSchedule.Action, [StepOp])? in
            if case let .schedule(action) = block.phase { return (action, block.ops) } else { return nil }
        }
        // Each chunk's last backward finalises its gradients: its buckets start as its layers
        // finish. (The program's schedule blocks are the schedule's actions, in order.)
        let pipeline = layout.pipeline, chunkLayers = program.plan.chunkLayers
        let lastBackwards = pipeline.lastBackwards(stage: stage.index)
        var traffic = Traffic()
        var lossSum: Float = 0
        var sends: [Request] = []
        // A micro-batch's gradient leaves from `dResidual` (once per chunk when interleaved): a
        // send must be complete before the next gradient of that micro-batch lands there.
        var gradientSends: [Int: Request] = [:]
        func settleGradientSend(_ i: Int) throws {
            guard let request = gradientSends.removeValue(forKey: i) else { return }
            try transport.wait(request, operation: "pipeline send of gradients for micro-batch \(i)")
        }
        let pp = groups.pp
        for (position, (action, ops)) in schedule.enumerated() {
            // A message's size is the plan's.
            let width = (ops.first?.bytes ?? .zero).count / MemoryLayout<Float>.stride
            let waitStart = ContinuousClock.now
            defer {
                if case .receiveActivation = action { pipelineWait += ContinuousClock.now - waitStart }
                if case .receiveGradient = action { pipelineWait += ContinuousClock.now - waitStart }
            }
            switch action {
            case let .receiveActivation(i, from):
                let a = microActivations[i], sender = pipeline.stage(ofVirtual: from)
                let request = try pp.irecv(into: boundary(a.residual[chunkLayers[from].upperBound], floats: width),
                                           from: sender, tag: tag(action))
                try trace("recv A\(i)", lane: "pipeline") {
                    try transport.wait(request, operation: "pipeline receive of activations for micro-batch \(i) from stage \(sender)")
                }
            case let .receiveGradient(i, from):
                let a = microActivations[i], sender = pipeline.stage(ofVirtual: from)
                try settleGradientSend(i)
                let request = try pp.irecv(into: boundary(a.dResidual, floats: width),
                                           from: sender, tag: tag(action))
                try trace("recv G\(i)", lane: "pipeline") {
                    try transport.wait(request, operation: "pipeline receive of gradients for micro-batch \(i) from stage \(sender)")
                }
            case let .forward(i, chunkIndex):
                let began = ContinuousClock.now
                let a = microActivations[i], chunk = stage.chunks[chunkIndex]
                a.firstSample = samples(microbatch: i).lowerBound
                // Only the first chunk needs the tokens and only the last the targets; each
                // micro-batch keeps its own buffers, so the backward pass finds them still there.
                let (tokens, targets) = chunk.embed || chunk.head ? microbatch(step: step, i) : ([], [])
                if chunk.embed {
                    holdPositions(tokens, into: a.tokens)
                    if deterministic { holdSampleTokens(tokens, in: a) }
                }
                try trace(StepProgram.Phase.schedule(action).description, lane: "compute") {
                    try model.forward(a, layers: chunk.layers, embed: chunk.embed, head: chunk.head)
                }
                if chunk.head {
                    holdPositions(targets, into: a.targets)
                    let microLoss = model.kernel(.crossEntropy, rows * c.model.vocabulary) {
                        CrossEntropy.forwardBackward(logits: a.logits.pointer, targets: a.targets, losses: a.losses.pointer,
                                                     rows: rows, vocabulary: c.model.vocabulary, gradient: true, gradientRows: globalRows)
                    }
                    lossSum += microLoss * Float(rows) / Float(globalRows)
                    if deterministic {
                        for (sample, sum) in zip(samples(microbatch: i), try sequenceLosses(a)) { sampleLosses[sample] = sum }
                    }
                }
                // A straggler's compute is slower: the injected delay counts as compute.
                injector?.slowdown(step: step + 1, phase: .forward, seconds: (ContinuousClock.now - began).seconds)
                compute += ContinuousClock.now - began
            case let .backward(i, chunkIndex):
                injector?.reach(step: step + 1, phase: .backward)
                let chunk = stage.chunks[chunkIndex]
                if chunk.head { try settleGradientSend(i) }
                let began = ContinuousClock.now
                let overlap: ((Int) throws -> Void)? = lastBackwards.contains(position) && !deterministic ? buckets.map { b in { try b.finalized(from: $0) } } : nil
                // Deterministic mode keeps each micro-batch's gradient apart and joins them in tree order.
                orderedGradients?.clear(model, chunk: chunkIndex)
                try trace(StepProgram.Phase.schedule(action).description, lane: "compute") {
                    try model.backward(microActivations[i], layers: chunk.layers, embed: chunk.embed, head: chunk.head,
                                       finalized: overlap)
                }
                orderedGradients?.add(node: samples(microbatch: i), chunk: chunkIndex, from: model)
                stepPeakResident = max(stepPeakResident, residentStateBytes())
                injector?.slowdown(step: step + 1, phase: .backward, seconds: (ContinuousClock.now - began).seconds)
                compute += ContinuousClock.now - began
            case let .sendActivation(i, to):
                let a = microActivations[i]
                sends.append(try pp.isend(UnsafeRawBufferPointer(boundary(a.residual[chunkLayers[to].lowerBound], floats: width)),
                                          to: pipeline.stage(ofVirtual: to), tag: tag(action)))
                traffic.pipelineMessages += 1
                traffic.pipelineFloats += width
            case let .sendGradient(i, to):
                let a = microActivations[i]
                let request = try pp.isend(UnsafeRawBufferPointer(boundary(a.dResidual, floats: width)),
                                           to: pipeline.stage(ofVirtual: to), tag: tag(action))
                gradientSends[i] = request
                traffic.pipelineMessages += 1
                traffic.pipelineFloats += width
            case .optimizerStep:
                break
            }
        }
        try transport.wait(sends + gradientSends.values, operation: "pipeline sends of step \(step)")
        if let injector {
            let mine = ranges(stage: stage, shard: coordinates.tp, counted: false)
            if orderedGradients != nil {
                // Deterministic mode keeps the step's gradient in its accumulator until the sync.
                orderedGradients?.corrupt(step: step + 1, injector: injector)
            } else {
                injector.corruptNumbers(step: step + 1, parameters: false, buffer: model.gradients.pointer, ranges: mine)
            }
        }
        traffic.tensorAllReduces = model.shard.allReduces - tensorBefore.0
        traffic.tensorFloats = model.shard.reducedFloats - tensorBefore.1
        let tensorTime = model.shard.reduceTime - tensorBefore.2
        traffic.expertExchanges = exchanges.exchanges - exchangesBefore.0
        traffic.expertFloats = exchanges.exchangedFloats - exchangesBefore.1
        let expertTime = exchanges.exchangeTime - exchangesBefore.2
        traffic.contextExchanges = ring.exchanges - ringBefore.0
        traffic.contextFloats = ring.exchangedFloats - ringBefore.1
        let contextTime = ring.exchangeTime - ringBefore.2
        let dataStart = ContinuousClock.now
        let rate = c.schedule.rate(at: step)
        let norm: Float
        var exposedData: Duration
        if sharded {
            // What is left of the reduce-scatters, the sharded update and the all-gather are exposed here.
            (norm, traffic.dataAllReduces, traffic.dataFloats) = try trace("ZeRO-\(zero) update", lane: "data-parallel") {
                try shardedUpdate(learningRate: rate)
            }
            exposedData = ContinuousClock.now - dataStart
        } else {
            (traffic.dataAllReduces, traffic.dataFloats) = try trace("gradient sync", lane: "data-parallel") {
                try orderedGradients.map(synchronizeOrderedGradients) ?? synchronizeGradients()
            }
            exposedData = ContinuousClock.now - dataStart
            norm = try deterministic ? orderedGradientNorm() : globalGradientNorm()
            try checkFinite(norm, step: step)
            injector?.reach(step: step + 1, phase: .optimizer)
            if c.gradientClip > 0 && norm > c.gradientClip {
                let scale = c.gradientClip / (norm + 1e-6)
                for range in ownedRanges { for i in range { model.gradients.pointer[i] *= scale } }
            }
            optimizer.begin()
            let updated = ranges(stage: stage, shard: coordinates.tp, counted: false)
            OpLog.kernel("optimizer", elements: updated.reduce(0) { $0 + $1.count }) {
                for range in updated {
                    // Weight decay applies to matrices only, as in the single-process trainer.
                    let entry = model.layout.entry(containing: range.lowerBound)
                    optimizer.update(params: model.parameters.pointer + range.lowerBound, grads: model.gradients.pointer + range.lowerBound,
                                     m: firstMoment.pointer + range.lowerBound, v: secondMoment.pointer + range.lowerBound,
                                     count: range.count, learningRate: rate, decay: entry.decay)
                }
            }
        }
        if sharded { try checkFinite(norm, step: step) }
        if let gathers = shardedWeights?.takeTraffic() {
            traffic.dataAllReduces += gathers.gathers
            traffic.dataFloats += gathers.floats
            // Waiting for ZeRO-3's gathers happened inside the passes: it is exposed communication, not compute.
            compute -= gathers.waited
            exposedData += gathers.waited
        }
        injector?.corruptNumbers(step: step + 1, parameters: true, buffer: model.parameters.pointer, ranges: heldParameterRanges)
        if replicaCheckEvery > 0 && (step + 1) % replicaCheckEvery == 0 { try checkReplicas(step: step) }
        var loss = [stage.isLast ? lossSum : 0]
        if deterministic { loss[0] = try orderedLoss(sampleLosses) } else if stage.isLast { try groups.dp.allReduce(&loss) }
        let experts = try routingStatistics()
        lastStateBytes = stateBytes()
        let elapsed = (ContinuousClock.now - start).seconds
        return StepResult(loss: loss[0], gradientNorm: norm, learningRate: rate, seconds: elapsed,
                          computeSeconds: (compute - tensorTime - expertTime - contextTime).seconds, tensorSeconds: tensorTime.seconds,
                          expertSeconds: expertTime.seconds, contextSeconds: contextTime.seconds,
                          pipelineWaitSeconds: pipelineWait.seconds, exposedDataSeconds: exposedData.seconds, traffic: traffic,
                          experts: experts)
    }

    /// The first `floats` of `buffer` as bytes: the activations or gradients crossing a stage boundary.
    func boundary(_ buffer: FloatBuffer, floats: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffer.pointer, count: floats * MemoryLayout<Float>.stride)
    }

    /// Runs `body`, recording it as a span when tracing.
    func trace<T>(_ name: String, lane: String, _ body: () throws -> T) rethrows -> T {
        guard let recording else { return try body() }
        return try recording.span(name, lane: lane, body)
    }

    /// Sums the tied embedding's gradient over the first and last stage, then completes the
    /// data-parallel bucket all-reduces (most started during the backward pass). Returns the
    /// dp all-reduces and floats of the step.
    func synchronizeGradients() throws -> (Int, Int) {
        if let embedding = groups.embedding {
            let wte = model.layout.entry("wte")
            try embedding.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + wte.offset, count: wte.count))
        }
        return try buckets?.finish() ?? (0, 0)
    }

    /// √(Σ g²) over every parameter of the model, each counted once across the pipeline and
    /// the tensor-parallel shards of this replica — and under expert parallelism the routed
    /// experts' part over the expert-parallel group too (each member holds other experts).
    func globalGradientNorm() throws -> Float {
        var local: Double = 0, routed: Double = 0
        for range in ranges(stage: stage, shard: coordinates.tp, counted: true) {
            let isRouted = isRoutedExpert(range)
            for i in range {
                let g = Double(model.gradients.pointer[i])
                if isRouted { routed += g * g } else { local += g * g }
            }
        }
        var total = layout.ep > 1 ? [Float(local), Float(routed)] : [Float(local)]
        try groups.replica.allReduce(&total)
        guard let expert = groups.expert else { return total[0].squareRoot() }
        var experts = [total[1]]
        try expert.allReduce(&experts)
        return (total[0] + experts[0]).squareRoot()
    }
}
