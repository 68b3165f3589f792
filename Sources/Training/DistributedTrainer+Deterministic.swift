import Collectives
import Parallelism
import Tensor

extension DistributedTrainer {
    /// The tree over the global batch's samples that every gradient sum follows.
    var batchTree: ReductionTree { ReductionTree(leaves: configuration.batch) }

    /// This replica's samples: its node of `batchTree`.
    var replicaSamples: Range<Int> { (coordinates.dp * samplesPerReplica)..<((coordinates.dp + 1) * samplesPerReplica) }

    /// Sums the replica's gradient over the dp group in tree order, then adds the tied
    /// embedding's two parts (here, or between the first and last stage). Returns the dp
    /// collectives and floats.
    func synchronizeOrderedGradients(_ ordered: OrderedGradients) throws -> (Int, Int) {
        let packed = ordered.total(of: replicaSamples)
        try groups.dp.orderedAllReduce(packed.buffer, tree: batchTree)
        ordered.unpack(packed, into: model)
        let wte = model.layout.entry("wte"), own = model.gradients.pointer + wte.offset
        if let head = model.tiedHeadGradient {
            if groups.embedding == nil { Elementwise.accumulate(own, head.pointer, count: wte.count) }
            else if stage.isLast { own.update(from: head.pointer, count: wte.count) }
        }
        if let embedding = groups.embedding {
            // Two members: embedding part + output part, in either order the same bits.
            try embedding.allReduce(UnsafeMutableBufferPointer(start: own, count: wte.count))
        }
        return (layout.dp > 1 ? 2 : 0, layout.dp > 1 ? packed.count : 0)
    }

    /// √(Σ g²) in a fixed order: one partial sum per (tensor, head block), formed by whichever
    /// rank holds that block, exchanged exactly (every slot has one non-zero contributor),
    /// then summed in slot order.
    func orderedGradientNorm() throws -> Float {
        let spec = configuration.model, heads = spec.heads
        let counted = ranges(stage: stage, shard: coordinates.tp, counted: true)
        var slots: [Float] = []
        for entry in model.layout.entries {
            let blocks = TensorShard.isSplit(entry, size: heads) ? heads : 1
            var partials = [Float](repeating: 0, count: blocks)
            if stage.counted.contains(where: { $0.contains(entry.offset) }) {
                for block in 0..<blocks {
                    let parts = blocks == 1 ? [entry.offset..<(entry.offset + entry.count)]
                        : TensorShard.ownedRanges(of: entry, spec: spec, size: heads, index: block)
                    // Only the rank that counts this block contributes it.
                    guard counted.contains(where: { $0.contains(parts[0].lowerBound) }) else { continue }
                    var sum: Double = 0
                    for part in parts { for i in part { let g = Double(model.gradients.pointer[i]); sum += g * g } }
                    partials[block] = Float(sum)
                }
            }
            slots += partials
        }
        try groups.replica.allReduce(&slots)
        var total: Double = 0
        for slot in slots { total += Double(slot) }
        return Float(total.squareRoot())
    }

    /// The mean loss over the global batch from per-sample sums placed in their slots
    /// (one contributor each), summed in sample order.
    func orderedLoss(_ sampleLosses: [Float]) throws -> Float {
        var slots = sampleLosses
        if stage.isLast { try groups.dp.allReduce(&slots) }
        var total: Double = 0
        for slot in slots { total += Double(slot) }
        return Float(total / Double(configuration.batch * configuration.sequence))
    }
}
