import Collectives
import OpLog
import Tensor

/// ZeRO (Rajbhandari et al. 2020): the optimizer state is sharded over the dp group (a routed
/// expert's, under expert parallelism, over the ranks holding it: each bucket's group). Each rank
/// reduce-scatters the gradients, updates only its block of the parameters with only its
/// block of Adam's moments, and (stages 1 and 2) all-gathers the updated parameters.
final class ShardedOptimizerState {
    /// This rank's block of each owned range, and where its moments start.
    let blocks: [(range: Range<Int>, moment: Int)]
    let firstMoment: FloatBuffer
    let secondMoment: FloatBuffer

    init(blocks: [Range<Int>]) {
        var offset = 0
        self.blocks = blocks.map { block in
            defer { offset += block.count }
            return (block, offset)
        }
        firstMoment = FloatBuffer(count: offset)
        secondMoment = FloatBuffer(count: offset)
    }
}

extension DistributedTrainer {
    /// The ZeRO end of a step: returns the global gradient norm and the dp collectives and floats.
    /// Deterministic mode sums the gradient in tree order over the whole buffer first (the norm's
    /// canonical per-tensor sums need every tensor's gradient on one rank), then drops what
    /// other ranks own; the update and the all-gather are ZeRO's either way.
    func shardedUpdate(learningRate: Float) throws -> (norm: Float, collectives: Int, floats: Int) {
        let buckets = buckets!, state = shardedState!
        let norm: Float, scatters: Int, floats: Int
        if let ordered = orderedGradients {
            (scatters, floats) = try synchronizeOrderedGradients(ordered)
            norm = try orderedGradientNorm()
            if zero >= 2 { for bucket in buckets.buckets { model.gradients.release(bucket.others) } }
        } else {
            // The tied embedding's two copies summed first (both ends then scatter the same totals),
            // then the reduce-scatters the backward pass has not started yet.
            (scatters, floats) = try synchronizeGradients()
            // Norm over this rank's blocks (each parameter counted once per replica), summed over dp, then over the replica.
            // Under expert parallelism the routed experts' blocks are summed over their holders instead,
            // then over the expert-parallel group (each member holds other experts).
            var local: Double = 0, routed: Double = 0
            Self.intersect(state.blocks.map(\.range), ranges(stage: stage, shard: coordinates.tp, counted: true)) { part, _ in
                let isRouted = isRoutedExpert(part)
                for i in part {
                    let g = Double(model.gradients.pointer[i])
                    if isRouted { routed += g * g } else { local += g * g }
                }
            }
            var total = [Float(local)], experts = [Float(routed)]
            try groups.dp.allReduce(&total)
            if let holders = groups.expertData { try holders.allReduce(&experts) }
            if layout.ep > 1 { total.append(experts[0]) }
            try groups.replica.allReduce(&total)
            if let group = groups.expert {
                experts = [total[1]]
                try group.allReduce(&experts)
                total[0] += experts[0]
            }
            norm = total[0].squareRoot()
        }
        let clip = configuration.gradientClip
        let scale: Float = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1

        optimizer.begin()
        OpLog.kernel("optimizer", elements: state.blocks.reduce(0) { $0 + $1.range.count }) {
            for (block, moment) in state.blocks {
                // A block may span parameters: each piece takes its own parameter's weight decay.
                for (entry, part) in model.layout.split(block) {
                    if scale != 1 { for i in part { model.gradients.pointer[i] *= scale } }
                    let m = moment + part.lowerBound - block.lowerBound
                    optimizer.update(params: model.parameters.pointer + part.lowerBound, grads: model.gradients.pointer + part.lowerBound,
                                     m: state.firstMoment.pointer + m, v: state.secondMoment.pointer + m,
                                     count: part.count, learningRate: learningRate, decay: entry.decay)
                }
            }
        }
        // ZeRO-3 keeps its blocks until a pass gathers them; 1 and 2 hand the updated blocks round now.
        guard zero < 3 else { return (norm, scatters, floats) }
        try buckets.allGather(model.parameters.pointer)
        return (norm, scatters + buckets.buckets.count, floats)
    }

    /// Calls `body` with each non-empty intersection of two sorted lists of disjoint ranges, in
    /// order, and the index in `a` of the range it lies in.
    static func intersect(_ a: [Range<Int>], _ b: [Range<Int>], _ body: (Range<Int>, Int) -> Void) {
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let low = max(a[i].lowerBound, b[j].lowerBound), high = min(a[i].upperBound, b[j].upperBound)
            if low < high { body(low..<high, i) }
            if a[i].upperBound < b[j].upperBound { i += 1 } else { j += 1 }
        }
    }
}
