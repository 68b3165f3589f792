import Collectives
import Parallelism
import Tensor

/// Context parallelism in the trainer: the ranks of a context-parallel group run the same
/// micro-batches, each on its positions of every sequence. Each rank's node of the batch's
/// samples (`samples(microbatch:)`, what its gradient and loss slots answer for) is its share of
/// the group's micro-batch, so the data-parallel sums over the dp group (which includes the
/// group) stay as they are.
extension DistributedTrainer {
    /// Sequences a micro-batch's activations hold on this rank (the context-parallel group's).
    var microbatchSequences: Int { layout.sequencesPerMicrobatch(batch: configuration.batch) }

    /// Global sample indices of micro-batch `i`'s sequences, in the order the activations hold
    /// them: the group's, every member's node in member order (each member then forms the
    /// gradients of the block `toSamples` hands it); one contiguous block when the group's
    /// sequences do not split into one node per member (default mode only).
    func dataSamples(microbatch i: Int) -> [Range<Int>] {
        let cp = layout.cp
        guard cp > 1 else { return [samples(microbatch: i)] }
        let group = coordinates.dp / cp
        if microbatchSequences % cp == 0 { return (0..<cp).map { samples(microbatch: i, replica: group * cp + $0) } }
        let start = group * (configuration.batch / layout.dataShards) + i * microbatchSequences
        return [start..<(start + microbatchSequences)]
    }

    /// Whether each member forms its own node's per-sample sums (deterministic mode needs it).
    var contextNodes: Bool { layout.cp == 1 || microbatchSequences % layout.cp == 0 }

    /// Copies whole-sequence `values` of the micro-batch (`[sequences][t]`) into `into`: all of
    /// them, or under context parallelism this rank's positions of each.
    func holdPositions(_ values: [Int32], into: UnsafeMutablePointer<Int32>) {
        values.withUnsafeBufferPointer { full in
            guard layout.cp > 1 else { return into.update(from: full.baseAddress!, count: full.count) }
            model.context.take(full.baseAddress!, into: into, batch: microbatchSequences, sequence: configuration.sequence, width: 1)
        }
    }

    /// The tokens and targets of micro-batch `i` of `step`, whole sequences in `dataSamples` order.
    func microbatch(step: Int, _ i: Int) -> (tokens: [Int32], targets: [Int32]) {
        dataSamples(microbatch: i).reduce(into: ([Int32](), [Int32]())) { batch, samples in
            let part = data.trainingBatch(step: step, batch: configuration.batch, samples: samples)
            batch.0 += part.tokens
            batch.1 += part.targets
        }
    }

    /// Deterministic mode: this rank's node's whole-sequence tokens (what its embedding gradients read).
    func holdSampleTokens(_ tokens: [Int32], in a: Activations) {
        guard layout.cp > 1, contextNodes else { return }
        let node = microbatchSequences / layout.cp, t = configuration.sequence, first = model.context.index * node * t
        tokens.withUnsafeBufferPointer { a.sampleTokens.update(from: $0.baseAddress! + first, count: node * t) }
    }

    /// Each sequence's summed loss over all its positions in position order (as one process
    /// sums it) for this rank's node of the micro-batch; under context parallelism the per-row
    /// losses first move to whole sequences of the node. Without nodes (see `contextNodes`),
    /// this rank's positions' partial sums for every sequence of the micro-batch.
    func sequenceLosses(_ a: Activations) throws -> [Float] {
        let t = configuration.sequence
        var losses = UnsafePointer(a.losses.pointer), sequences = a.batch, length = a.sequence
        if layout.cp > 1 && contextNodes {
            losses = UnsafePointer(try model.context.toSamples(a.losses.pointer, batch: a.batch, sequence: t, width: 1, slot: 2))
            (sequences, length) = (a.batch / layout.cp, t)
        }
        return (0..<sequences).map { j in
            var sum: Double = 0
            for r in (j * length)..<((j + 1) * length) { sum += Double(losses[r]) }
            return Float(sum)
        }
    }
}
