import Tensor
import Workload

/// Forward activations (kept for the backward pass) and backward scratch for one batch shape.
final class Activations {
    let batch: Int, sequence: Int
    let tokens: UnsafeMutablePointer<Int32>
    let targets: UnsafeMutablePointer<Int32>
    /// residual[0] is the embedding output; residual[l + 1] the output of block l.
    let residual: [FloatBuffer]
    let afterAttention: [FloatBuffer]
    let ln1: [FloatBuffer], ln1Mean: [FloatBuffer], ln1Rstd: [FloatBuffer]
    let qkv: [FloatBuffer]
    let probabilities: [FloatBuffer]
    let attention: [FloatBuffer]
    let ln2: [FloatBuffer], ln2Mean: [FloatBuffer], ln2Rstd: [FloatBuffer]
    let fc: [FloatBuffer], gelu: [FloatBuffer]
    /// tanh inside each GELU, kept from the forward pass for the backward one.
    let geluTanh: [FloatBuffer]
    let lnf: FloatBuffer, lnfMean: FloatBuffer, lnfRstd: FloatBuffer
    let logits: FloatBuffer
    let losses: FloatBuffer
    // Backward scratch, reused by every layer.
    let dResidual: FloatBuffer, dNormed: FloatBuffer, dQKV: FloatBuffer, dAttention: FloatBuffer, dHidden: FloatBuffer
    let attentionScratch: FloatBuffer

    /// `local` gives the tensor-parallel shard's attention channels, heads and MLP width.
    init(spec: ModelSpec, batch: Int, sequence: Int, local: TensorShard.Dimensions) {
        self.batch = batch
        self.sequence = sequence
        let rows = batch * sequence, c = spec.dModel, h = local.hidden, layers = spec.layers, cl = local.channels
        func many(_ count: Int) -> [FloatBuffer] { (0..<layers).map { _ in FloatBuffer(count: count) } }
        tokens = .allocate(capacity: rows)
        targets = .allocate(capacity: rows)
        residual = (0...layers).map { _ in FloatBuffer(count: rows * c) }
        afterAttention = many(rows * c)
        ln1 = many(rows * c); ln1Mean = many(rows); ln1Rstd = many(rows)
        qkv = many(rows * 3 * cl)
        probabilities = many(batch * local.heads * sequence * sequence)
        attention = many(rows * cl)
        ln2 = many(rows * c); ln2Mean = many(rows); ln2Rstd = many(rows)
        fc = many(rows * h); gelu = many(rows * h); geluTanh = many(rows * h)
        lnf = FloatBuffer(count: rows * c); lnfMean = FloatBuffer(count: rows); lnfRstd = FloatBuffer(count: rows)
        logits = FloatBuffer(count: rows * spec.vocabulary)
        losses = FloatBuffer(count: rows)
        dResidual = FloatBuffer(count: rows * c)
        dNormed = FloatBuffer(count: rows * c)
        dQKV = FloatBuffer(count: rows * 3 * cl)
        dAttention = FloatBuffer(count: rows * cl)
        dHidden = FloatBuffer(count: rows * h)
        attentionScratch = FloatBuffer(count: max(1, Parallel.threads) * sequence * sequence)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }
}
