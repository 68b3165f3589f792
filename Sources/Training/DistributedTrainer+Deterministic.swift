import Collectives
import Parallelism
import Tensor

extension DistributedTrainer {
    /// The tree over the global batch's samples that every gradient sum follows.
    var batchTree: ReductionTree { ReductionTree(leaves: configuration.batch) }

    /// This replica's samples: its node of `batchTree`.
    var replicaSamples: Range<Int> { (coordinates.dp * samplesPerReplica)..<((coordinates.dp + 1) * samplesPerReplica) }

    /// The ranges deterministic mode joins per micro-batch: all this rank updates but (under
    /// expert parallelism) its routed experts, whose nodes come from every member (`expertGradients`).
    var denseRanges: [Range<Int>] {
        ranges(stage: stage, shard: coordinates.tp, counted: false).filter { !isRoutedExpert($0) }
    }

    /// The flat range of MoE block `layer`'s routed experts this rank holds (consecutive experts: contiguous).
    func expertRange(layer: Int) -> Range<Int> {
        let held = model.expertShard.held
        let first = model.layout.entry("h\(layer).moe.e\(held.lowerBound).fc.w")
        let last = model.layout.entry("h\(layer).moe.e\(held.upperBound - 1).proj.b")
        return first.offset..<(last.offset + last.count)
    }

    /// The samples of this rank's expert-parallel group: every member's replica, a node of `batchTree`.
    var expertGroupSamples: Range<Int> {
        let first = coordinates.dp / layout.ep * layout.ep
        return (first * samplesPerReplica)..<((first + layout.ep) * samplesPerReplica)
    }

    /// Sums the replica's gradient over the dp group in tree order, then adds the tied
    /// embedding's two parts (here, or between the first and last stage). Returns the dp
    /// collectives and floats.
    func synchronizeOrderedGradients(_ ordered: OrderedGradients) throws -> (Int, Int) {
        let packed = ordered.total(of: replicaSamples)
        try groups.dp.orderedAllReduce(packed.buffer, tree: batchTree)
        ordered.unpack(packed, into: model)
        var collectives = layout.dp > 1 ? 2 : 0, floats = layout.dp > 1 ? packed.count : 0
        // Each MoE block's held experts: the group's nodes joined here, then summed over the ranks holding the same experts.
        for layer in expertGradients.keys.sorted() {
            let experts = expertGradients[layer]!, total = experts.total(of: expertGroupSamples)
            if let group = groups.expertData, group.size > 1 {
                try group.orderedAllReduce(total.buffer, tree: batchTree)
                (collectives, floats) = (collectives + 2, floats + total.count)
            }
            experts.unpack(total, into: model)
        }
        let wte = model.layout.entry("wte"), own = model.gradients.pointer + wte.offset
        if let head = model.tiedHeadGradient {
            if groups.embedding == nil { Elementwise.accumulate(own, head.pointer, count: wte.count) }
            else if stage.isLast { own.update(from: head.pointer, count: wte.count) }
        }
        if let embedding = groups.embedding {
            // Two members: embedding part + output part, in either order the same bits.
            try embedding.allReduce(UnsafeMutableBufferPointer(start: own, count: wte.count))
        }
        return (collectives, floats)
    }

    /// The canonical blocks of the parameters: each tensor that tensor parallelism splits is
    /// cut into one block per attention head, every other tensor is one block. Returns the
    /// blocks per tensor (layout order) and, for the blocks this rank counts (each block is
    /// counted by exactly one rank of a replica), their slot and flat ranges.
    /// Under expert parallelism a routed expert's blocks are counted by its holder in the replica
    /// of the expert-parallel group that holds it (see `shareExpertSlots`).
    func canonicalBlocks() -> (perEntry: [Int], mine: [(slot: Int, parts: [Range<Int>])]) {
        let spec = configuration.model, heads = spec.heads
        let counted = ranges(stage: stage, shard: coordinates.tp, counted: true)
        var perEntry: [Int] = [], mine: [(slot: Int, parts: [Range<Int>])] = [], slot = 0
        for entry in model.layout.entries {
            let blocks = TensorShard.isSplit(entry, size: heads) ? heads : 1
            perEntry.append(blocks)
            for block in 0..<blocks {
                let parts = blocks == 1 ? [entry.offset..<(entry.offset + entry.count)]
                    : TensorShard.ownedRanges(of: entry, size: heads, index: block)
                if counted.contains(where: { $0.contains(parts[0].lowerBound) }) { mine.append((slot + block, parts)) }
            }
            slot += blocks
        }
        return (perEntry, mine)
    }

    /// √(Σ g²) in a fixed order: one partial sum per canonical block, formed by the rank that
    /// counts it, exchanged exactly (every slot has one non-zero contributor), then summed in
    /// slot order.
    func orderedGradientNorm() throws -> Float {
        let (perEntry, mine) = canonicalBlocks()
        var slots = [Float](repeating: 0, count: perEntry.reduce(0, +))
        for (slot, parts) in mine {
            var sum: Double = 0
            for part in parts { for i in part { let g = Double(model.gradients.pointer[i]); sum += g * g } }
            slots[slot] = Float(sum)
        }
        try groups.replica.allReduce(&slots)
        try shareExpertSlots(&slots, width: 1)
        var total: Double = 0
        for slot in slots { total += Double(slot) }
        return Float(total.squareRoot())
    }

    /// A checksum of each parameter tensor (layout order) that does not depend on the layout:
    /// FNV-1a over each canonical block's bits, then over the blocks' checksums. Every rank
    /// of a replica takes part; every rank gets the result.
    public func parameterChecksums() throws -> [UInt64] {
        try withWholeParameters { try checksums() }
    }

    private func checksums() throws -> [UInt64] {
        let (perEntry, mine) = canonicalBlocks()
        // 16 bits per float slot: small integers survive a sum with zeros exactly.
        var slots = [Float](repeating: 0, count: 4 * perEntry.reduce(0, +))
        for (slot, parts) in mine {
            var hash = Checksum.fnvOffset
            for part in parts { hash = Checksum.fnv1a(model.parameters.pointer + part.lowerBound, count: part.count, hash) }
            slots.replaceSubrange((4 * slot)..<(4 * slot + 4), with: ExactFloats.pieces(hash))
        }
        try groups.replica.allReduce(&slots)
        try shareExpertSlots(&slots, width: 4)
        var result: [UInt64] = [], slot = 0
        for blocks in perEntry {
            var hash = Checksum.fnvOffset
            for _ in 0..<blocks {
                hash = Checksum.fnv1a(ExactFloats.value(slots[(4 * slot)..<(4 * slot + 4)]), hash)
                slot += 1
            }
            result.append(hash)
        }
        return result
    }

    /// Under expert parallelism, after the replica's exchange: the routed experts' slots (`width`
    /// floats each) summed over the expert-parallel group, where exactly one member holds each.
    private func shareExpertSlots(_ slots: inout [Float], width: Int) throws {
        guard let group = groups.expert else { return }
        var routed: [Int] = [], slot = 0
        for entry in model.layout.entries {
            let blocks = TensorShard.isSplit(entry, size: configuration.model.heads) ? configuration.model.heads : 1
            if entry.parameter.expert != nil { routed += (slot * width)..<((slot + blocks) * width) }
            slot += blocks
        }
        var part = routed.map { slots[$0] }
        try group.allReduce(&part)
        for (index, value) in zip(routed, part) { slots[index] = value }
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
