import Parallelism
import Tensor

/// Context parallelism in the passes: the rows a rank holds are its positions of each
/// sequence (`a.positions`), so the embeddings add their own positions' table rows and each
/// attention runs as ring attention over the group (`ContextShard`).
extension GPT {
    /// The token and position embeddings of the held positions into `out`.
    func embedHeldPositions(_ a: Activations, into out: UnsafeMutablePointer<Float>) {
        let c = spec.dModel, held = a.sequence
        for s in 0..<a.batch {
            var row = s * held
            for chunk in a.positions.rows {
                Embedding.forward(out: out + row * c, tokens: a.tokens + row, wte: pointer("wte"), wpe: pointer("wpe") + chunk.lowerBound * c,
                                  batch: 1, sequence: chunk.count, channels: c)
                row += chunk.count
            }
        }
    }

    /// This rank's K and V rows of layer `l` (`[B, held, 2C]`), packed out of its QKV into `a.dKeyValues`.
    private func heldKeyValues(_ a: Activations, layer l: Int, channels cl: Int) -> UnsafePointer<Float> {
        let out = a.dKeyValues.pointer, qkv = a.qkv[l].pointer
        for row in 0..<(a.batch * a.sequence) { (out + row * 2 * cl).update(from: qkv + row * 3 * cl + cl, count: 2 * cl) }
        return UnsafePointer(out)
    }

    /// Passes the group's K/V blocks of layer `l` round the ring into `a.keyValues` (position
    /// order); `arrived(rank, block)` sees each block as it lands.
    private func gatherKeyValues(_ a: Activations, layer l: Int, channels cl: Int,
                                 arrived: (Int, UnsafePointer<Float>) -> Void = { _, _ in }) throws {
        let t = a.positions.sequence, width = 2 * cl, count = a.batch * a.sequence * width
        let blocks = try context.passKeyValues(heldKeyValues(a, layer: l, channels: cl), count: count, arrived: { arrived($0, $1) })
        for r in 0..<context.size {
            context.copyRows(of: r, blocks + r * count, a.keyValues.pointer, sequences: a.batch, sequence: t, width: width, toWhole: true)
        }
    }

    /// Ring attention's forward pass of layer `l`: the scores against each K/V block as it arrives,
    /// then the softmax and the mixing once all have (bit for bit the single-process rows).
    func ringAttentionForward(_ a: Activations, layer l: Int, shape: Attention.Shape) throws {
        let t = a.positions.sequence, scores = a.batch * shape.heads * a.sequence * t
        try gatherKeyValues(a, layer: l, channels: shape.channels) { r, block in
            Attention.scores(probabilities: a.probabilities[l].pointer, qkv: a.qkv[l].pointer, keyValues: block,
                             keyChunks: context.chunks(of: r, sequence: t), positions: a.positions, shape: shape)
        }
        kernel(.attentionForward, scores, flops: 4 * Double(spec.headSize * scores)) {
            Attention.mix(out: a.attention[l].pointer, probabilities: a.probabilities[l].pointer, keyValues: a.keyValues.pointer,
                          positions: a.positions, shape: shape)
        }
    }

    /// Ring attention's backward pass of layer `l` into `a.dQKV`. By default the K/V blocks are
    /// gathered again, each rank forms its queries' gradient and its share of every key's and
    /// value's, and those shares are summed back to the ranks holding them (a reduce-scatter).
    /// In deterministic mode whole sequences of each rank's samples are formed by the
    /// single-process kernel instead (the K/V sums then run over every query in its order).
    func ringAttentionBackward(_ a: Activations, layer l: Int, shape: Attention.Shape) throws {
        let b = a.batch, t = a.positions.sequence, cl = shape.channels, heads = shape.heads
        let scores = b * heads * a.sequence * t, flops = 8 * Double(spec.headSize * scores)
        guard deterministic else {
            try gatherKeyValues(a, layer: l, channels: cl)
            a.dKeyValues.zero()
            kernel(.attentionBackward, scores, flops: flops) {
                Attention.backward(dqkv: a.dQKV.pointer, dKeyValues: a.dKeyValues.pointer, dout: a.dAttention.pointer, qkv: a.qkv[l].pointer,
                                   keyValues: a.keyValues.pointer, probabilities: a.probabilities[l].pointer, scratch: a.attentionScratch.pointer,
                                   positions: a.positions, shape: shape)
            }
            return try context.scatterKeyValueGradients(a.dKeyValues.pointer, into: a.dQKV.pointer + cl, batch: b, sequence: t,
                                                        width: 2 * cl, ldLocal: 3 * cl)
        }
        let dy = try context.toSamples(a.dAttention.pointer, batch: b, sequence: t, width: cl, slot: 2)
        let qkv = try context.toSamples(a.qkv[l].pointer, batch: b, sequence: t, width: 3 * cl, slot: 3)
        let p = try context.toSamples(a.probabilities[l].pointer, batch: b, groups: heads, sequence: t, width: t, slot: 4)
        let samples = b / context.size, dqkv = context.scratch(5, samples * t * 3 * cl)
        kernel(.attentionBackward, scores, flops: flops) {
            Attention.backward(dqkv: dqkv, dout: dy, qkv: qkv, probabilities: p, scratch: a.attentionScratch.pointer,
                               shape: Attention.Shape(batch: samples, sequence: t, channels: cl, heads: heads))
        }
        try context.fromSamples(dqkv, into: a.dQKV.pointer, batch: b, sequence: t, width: 3 * cl)
    }
}
