import Collectives
import Tensor

/// ZeRO stage 1 (Rajbhandari et al. 2020): the optimizer state is sharded over the dp group.
/// Each rank reduce-scatters the gradients, updates only its block of the parameters with
/// only its block of Adam's moments, and all-gathers the updated parameters.
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
    /// The ZeRO-1 end of a step: returns the global gradient norm and the dp collectives and floats.
    func shardedUpdate(learningRate: Float) throws -> (norm: Float, collectives: Int, floats: Int) {
        if let embedding = groups.embedding {
            // The tied embedding's two copies are summed first, so both ends scatter the same totals.
            let wte = model.layout.entry("wte")
            try embedding.allReduce(UnsafeMutableBufferPointer(start: model.gradients.pointer + wte.offset, count: wte.count))
        }
        var blocks: [Range<Int>] = []
        for range in stage.owned {
            let mine = try groups.dp.reduceScatter(UnsafeMutableBufferPointer(start: model.gradients.pointer + range.lowerBound, count: range.count))
            blocks.append((range.lowerBound + mine.lowerBound)..<(range.lowerBound + mine.upperBound))
        }
        let state = shardedState!
        precondition(state.blocks.map(\.range) == blocks, "ZeRO-1 blocks must be the reduce-scatter's")

        // Norm over this rank's blocks (each parameter counted once per replica), summed over dp, then over the replica.
        var local: Double = 0
        for counted in ranges(stage: stage, shard: coordinates.tp, counted: true) {
            for block in blocks where block.overlaps(counted) {
                for i in block.clamped(to: counted) { let g = Double(model.gradients.pointer[i]); local += g * g }
            }
        }
        var total = [Float(local)]
        try groups.dp.allReduce(&total)
        try groups.replica.allReduce(&total)
        let norm = total[0].squareRoot()
        let clip = configuration.gradientClip
        let scale: Float = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1

        optimizer.begin()
        for update in ranges(stage: stage, shard: coordinates.tp, counted: false) {
            let entry = model.layout.entry(containing: update.lowerBound)
            for (block, moment) in state.blocks where block.overlaps(update) {
                let part = block.clamped(to: update)
                if scale != 1 { for i in part { model.gradients.pointer[i] *= scale } }
                let m = moment + part.lowerBound - block.lowerBound
                optimizer.update(params: model.parameters.pointer + part.lowerBound, grads: model.gradients.pointer + part.lowerBound,
                                 m: state.firstMoment.pointer + m, v: state.secondMoment.pointer + m,
                                 count: part.count, learningRate: learningRate, decay: entry.decay)
            }
        }
        for range in stage.owned {
            try groups.dp.allGather(inPlace: UnsafeMutableBufferPointer(start: model.parameters.pointer + range.lowerBound, count: range.count))
        }
        let floats = stage.owned.reduce(0) { $0 + $1.count }
        return (norm, 2 * stage.owned.count, floats)
    }
}
