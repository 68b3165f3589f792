import Foundation
import Collectives
import Tensor

extension DistributedTrainer {
    /// Trains for `configuration.steps` steps; `everyRank` sees each rank's own step, `report`
    /// is called on the reporting rank only (with the global loss).
    /// Returns the summary on the reporting rank, nil elsewhere.
    @discardableResult
    /// With `checksums`, each step's metrics carry `parameterChecksums()` (for run records).
    /// An error thrown by either (a record that cannot be written) stops the run at that step.
    public func run(checksums: Bool = false, everyRank: (StepMetrics, StepResult) throws -> Void = { _, _ in },
                    report: (StepMetrics, StepResult) throws -> Void = { _, _ in }) throws -> TrainingSummary? {
        let c = configuration
        // One rank measures the sgemm rate while the others wait, so the measurement is not
        // shared with them; the machine's peak is that rate per thread times the cores in use.
        if isReporter { gemmFLOPs = BLAS.measureGEMMRate(threads: c.threads) }
        let blasKernels = try gatherBLASKernels()
        let placement = try gatherPlacement()
        let coresInUse = min(transport.worldSize * c.threads, WorldSetup.usableCores)
        let peak = gemmFLOPs / Double(c.threads) * Double(max(coresInUse, c.threads))
        // The CPU's own peak does not depend on the kernel, so a slow fallback cannot look efficient against it.
        let cpuPeak = CPUFeatures.current.peakFLOPs(threads: max(coresInUse, c.threads))
        let flopsPerToken = c.model.trainingFLOPsPerToken(sequence: c.sequence)
        var losses: [Float] = []
        var seconds = 0.0, tokens = 0, computeTotal = 0.0, computeSteps = 0
        try groups.world.barrier()
        let end = min(c.steps, stopAfter ?? c.steps)
        // Asynchronous saves copy into a buffer made (and paged in) now, not during a step.
        if checkpointing?.async == true { _ = snapshotBuffer(floats: checkpointSlices().reduce(0) { $0 + $1.slice.count }) }
        for step in startStep..<end {
            let result = try trainStep(step)
            losses.append(result.loss)
            // An asynchronous save is published after the step that overlapped its write.
            let stallStart = ContinuousClock.now
            let publishing = pendingCheckpoint != nil
            try finishCheckpoint()
            var saving = false
            if let policy = checkpointing, policy.every > 0, (step + 1) % policy.every == 0 {
                saving = true
                try saveCheckpoint(step: step + 1, policy: policy)
            }
            let stall = publishing || saving ? (ContinuousClock.now - stallStart).seconds : 0
            if step > startStep || end == startStep + 1 {
                seconds += result.seconds + stall
                computeTotal += result.computeSeconds
                computeSteps += 1
                tokens += c.batch * c.sequence
            }
            var validation: Float?
            if c.evalEvery > 0 && (step + 1) % c.evalEvery == 0 && step + 1 < c.steps { validation = try validationLoss() }
            var metrics = StepMetrics(step: step, loss: result.loss, learningRate: result.learningRate, gradientNorm: result.gradientNorm,
                                      seconds: result.seconds + stall, tokens: c.batch * c.sequence, validationLoss: validation)
            metrics.checkpointSeconds = stall
            if isReporter {
                let achieved = metrics.tokensPerSecond * flopsPerToken
                metrics.mfu = achieved / TrainingSummary.statedPeak(cpu: cpuPeak, sgemm: peak, achieved: achieved)
                metrics.cpuPeakMFU = cpuPeak.map { metrics.tokensPerSecond * flopsPerToken / $0 }
            }
            if checksums { metrics.checksums = try parameterChecksums() }
            try everyRank(metrics, result)
            if isReporter { try report(metrics, result) }
            if try preempted() {
                preemptedAfter = step + 1
                break
            }
        }
        let last = preemptedAfter ?? end
        if let policy = checkpointing {
            try finishCheckpoint()
            // The run's final state is always saved (unless this very step is already there).
            if lastCheckpoint?.directory != policy.directory || lastCheckpoint?.step != last {
                var final = policy
                final.async = false
                try saveCheckpoint(step: last, policy: final)
            }
        }
        // Preempted: the checkpoint is what matters; the validation pass and the summary can wait.
        if preemptedAfter != nil { return nil }
        let validation = try validationLoss()
        let stragglers = try findStragglers(computePerStep: computeSteps > 0 ? computeTotal / Double(computeSteps) : 0)
        let state = try largestStateBytes()
        guard isReporter else { return nil }
        let tokensPerSecond = seconds > 0 ? Double(tokens) / seconds : 0
        return TrainingSummary(finalLoss: losses.last ?? .nan, validationLoss: validation, tokensPerSecond: tokensPerSecond,
                               achievedFLOPs: tokensPerSecond * flopsPerToken, gemmFLOPs: peak, cpuPeakFLOPs: cpuPeak,
                               losses: losses, stragglers: stragglers, blasKernels: blasKernels, hosts: placement.hosts, transportPaths: placement.paths,
                               stateBytesPerRank: state.held, residentStateBytesPerRank: state.resident,
                               peakResidentStateBytesPerRank: state.peakResident, activationBytesPerRank: state.activations)
    }

    /// Every rank's compute per step, gathered: ranks slower than 1.5× the median of their
    /// stage's peers (same layers, same work) are stragglers. A stage without peers (a
    /// pipeline rank with no data- or tensor-parallel twin) is judged by its seconds per
    /// planned FLOP against the median of every rank's: the plan says how much work each
    /// stage has, so a slow stage shows even though no one does its exact work.
    func findStragglers(computePerStep: Double) throws -> [Straggler] {
        guard transport.worldSize > 1 else { return [] }
        let world = transport.worldSize
        var all = [Float](repeating: 0, count: 2 * world)
        let mine = [Float(computePerStep), Float(program.totals.flops.count)]
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try groups.world.allGather(input, into: $0) } }
        let compute = (0..<world).map { Double(all[2 * $0]) }, flops = (0..<world).map { Double(all[2 * $0 + 1]) }
        // The lower median: with two values, the faster one is the reference.
        func lowerMedian(_ values: [Double]) -> Double { values.sorted()[(values.count - 1) / 2] }
        let perFLOP = lowerMedian((0..<world).map { flops[$0] > 0 ? compute[$0] / flops[$0] : 0 })
        var found: [Straggler] = []
        for stage in 0..<layout.pp {
            let peers = (0..<world).filter { mesh.coordinates(of: $0).pp == stage }
            if peers.count > 1 {
                let median = lowerMedian(peers.map { compute[$0] })
                for rank in peers where median > 0 && compute[rank] > 1.5 * median {
                    found.append(Straggler(rank: rank, secondsPerStep: compute[rank], peerMedian: median))
                }
            } else if let rank = peers.first, perFLOP > 0, flops[rank] > 0, compute[rank] > 1.5 * perFLOP * flops[rank] {
                found.append(Straggler(rank: rank, secondsPerStep: compute[rank], peerMedian: perFLOP * flops[rank],
                                      basis: "what its planned FLOPs take at the ranks' median rate"))
            }
        }
        return found
    }

    /// Mean loss over the fixed validation windows, computed through the pipeline (forward only).
    public func validationLoss() throws -> Float {
        try Parallel.with(threads: configuration.threads) { try measureValidationLoss() }
    }

    private func measureValidationLoss() throws -> Float {
        let c = configuration
        // A stage hands on the positions it holds (a shard's share of each sequence under sequence parallelism).
        let held = model.context.localSequence(c.sequence), rows = microbatchSequences * held
        let width = model.shard.localRows(batch: microbatchSequences, sequence: held) * c.model.dModel
        let pp = groups.pp, schedule = layout.pipeline
        // One slot per validation sequence, filled by the rank that evaluates it and summed in
        // a fixed order: the same bits from every layout.
        var slots = [Float](repeating: 0, count: c.evalBatches * c.batch)
        for batch in 0..<c.evalBatches {
            let (tokens, targets) = data.validationBatch(batch, of: c.evalBatches, batch: c.batch)
            for i in 0..<layout.microbatches {
                let a = microActivations.isEmpty ? model.makeActivations(batch: microbatchSequences, sequence: c.sequence) : microActivations[0]
                // The micro-batch's whole sequences (under context parallelism the group's; this rank holds its positions).
                func part(_ values: [Int32]) -> [Int32] {
                    dataSamples(microbatch: i).flatMap { values[($0.lowerBound * c.sequence)..<($0.upperBound * c.sequence)] }
                }
                // The micro-batch passes through the virtual stages in order, this rank's chunks in turn.
                for chunk in stage.chunks {
                    // Validation messages use their own tag range, apart from training's.
                    let tag = Int32(1 << 18) + Int32(i * schedule.virtualStageCount + chunk.virtual)
                    if chunk.embed {
                        holdPositions(part(tokens), into: a.tokens)
                    } else {
                        let sender = schedule.stage(ofVirtual: chunk.virtual - 1)
                        let request = try pp.irecv(into: boundary(a.residual[chunk.layers.lowerBound], floats: width), from: sender, tag: tag)
                        try transport.wait(request, operation: "validation activations from stage \(sender)")
                    }
                    try model.forward(a, layers: chunk.layers, embed: chunk.embed, head: chunk.head)
                    if chunk.head {
                        holdPositions(part(targets), into: a.targets)
                        CrossEntropy.forwardBackward(logits: a.logits.pointer, targets: a.targets, losses: a.losses.pointer,
                                                     rows: rows, vocabulary: c.model.vocabulary, gradient: false)
                        // Each slot has one contributor (under context parallelism without nodes, each member's partial sum).
                        let owned = contextNodes ? [samples(microbatch: i)] : dataSamples(microbatch: i)
                        for (sample, sum) in zip(owned.joined(), try sequenceLosses(a)) { slots[batch * c.batch + sample] += sum }
                    } else {
                        let receiver = schedule.stage(ofVirtual: chunk.virtual + 1)
                        let request = try pp.isend(UnsafeRawBufferPointer(boundary(a.residual[chunk.layers.upperBound], floats: width)),
                                                   to: receiver, tag: tag + 1)
                        try transport.wait(request, operation: "validation activations to stage \(receiver)")
                    }
                }
            }
        }
        if stage.isLast { try groups.dp.allReduce(&slots) }
        var total: Double = 0
        for slot in slots { total += Double(slot) }
        return Float(total / Double(slots.count * c.sequence))
    }

    /// Collects every stage's and shard's parameters (of the first data-parallel replica, and
    /// under expert parallelism the first expert-parallel group's routed experts) on the
    /// reporting rank, which then holds the whole model; other ranks send theirs.
    public func gatherParameters() throws {
        // ZeRO-3: every data-parallel rank first hands its blocks round, and the weights stay (the run is over).
        try withWholeParameters(keep: true) {}
        // The first replica holds everything, but under expert parallelism the other experts are
        // with the rest of the first expert-parallel group.
        guard coordinates.dp < max(1, layout.ep), layout.pp * layout.tp * layout.ep > 1 else { return }
        let world = groups.world, tag: Int32 = 1 << 19
        let reporter = mesh.rank(dp: 0, tp: 0, pp: layout.pp - 1)
        if isReporter {
            for member in 0..<mesh.worldSize where member != reporter && mesh.coordinates(of: member).dp < max(1, layout.ep) {
                let c = mesh.coordinates(of: member)
                let counted = ranges(stage: Self.stage(c.pp, layout: layout, parameters: model.layout), shard: c.tp, counted: true,
                                     expertRank: c.dp % layout.ep)
                let wanted = firstReplicaRanges(counted, dp: c.dp)
                var packed = [Float](repeating: 0, count: wanted.reduce(0) { $0 + $1.count })
                try packed.withUnsafeMutableBytes {
                    let request = try world.irecv(into: $0, from: member, tag: tag)
                    try transport.wait(request, operation: "gathering the parameters of rank \(member)")
                }
                var offset = 0
                for range in wanted {
                    packed.withUnsafeBufferPointer { (model.parameters.pointer + range.lowerBound).update(from: $0.baseAddress! + offset, count: range.count) }
                    offset += range.count
                }
            }
        } else {
            let mine = firstReplicaRanges(ranges(stage: stage, shard: coordinates.tp, counted: true))
            var packed: [Float] = []
            for range in mine { packed += UnsafeBufferPointer(start: model.parameters.pointer + range.lowerBound, count: range.count) }
            // The bytes must stay put until the send completes, so the wait is inside the closure.
            try packed.withUnsafeBytes {
                let request = try world.isend($0, to: reporter, tag: tag)
                try transport.wait(request, operation: "sending parameters to rank \(reporter)")
            }
        }
    }

    /// Gathers every rank's trace spans on the reporting rank and returns the whole trace
    /// file there (nil on other ranks).
    public func collectTrace() throws -> String? {
        let reporter = mesh.rank(dp: 0, tp: 0, pp: layout.pp - 1)
        let mine = (tracer ?? Tracer()).events(pid: transport.rank, processName: "rank \(transport.rank) (\(mesh.coordinates(of: transport.rank)))")
        guard let all = try groups.world.gather(bytes: Array(mine.joined(separator: ",\n").utf8), root: reporter) else { return nil }
        let events = all.map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
        return "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + events.joined(separator: ",\n") + "\n]}\n"
    }

    /// Whether any rank was asked to stop: every rank learns it at the same step boundary
    /// (a one-float maximum over the world), so all of them save the same step.
    func preempted() throws -> Bool {
        guard let preemptionRequested else { return false }
        var flag: [Float] = [preemptionRequested() ? 1 : 0]
        try groups.world.allReduce(&flag, op: .max)
        return flag[0] > 0
    }
}
