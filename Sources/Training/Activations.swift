import Tensor
import Workload

/// Forward activations (kept for the backward pass) and backward scratch for one batch shape.
/// Under sequence parallelism the residual stream, the LayerNorms (outputs and statistics) and
/// the residual's gradient hold only this shard's `localSequence` positions of each sequence; a
/// block's LayerNorm output is gathered into `gatheredNorm` when a split product reads it, in
/// the forward pass and again in the backward (as Megatron-LM does), and only the final one is
/// kept gathered (`lnf`, which the replicated head reads).
final class Activations {
    let batch: Int, sequence: Int
    /// Positions of each sequence this rank holds outside the split products.
    let localSequence: Int
    /// Context parallelism: where the rows' positions sit in the whole sequence (`sequence` is
    /// then this rank's share); the attention's whole K/V (`[B, t, 2C]`) and their gradients'
    /// partial sums; whole-sequence tokens of this rank's samples (deterministic mode).
    let positions: Attention.Positions
    let keyValues: FloatBuffer, dKeyValues: FloatBuffer
    let sampleTokens: UnsafeMutablePointer<Int32>
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
    /// Sequence parallelism only (else empty): the final LayerNorm's output before it is gathered
    /// (and the head's input gradient taken back to this shard's positions); a split product's
    /// partial sum over whole sequences before its reduce-scatter; the residual's gradient and a
    /// block's LayerNorm output gathered.
    let normedLocal: FloatBuffer, partial: FloatBuffer, dGathered: FloatBuffer, gatheredNorm: FloatBuffer
    /// Each MoE block's buffers (nil for dense blocks), and their shared backward scratch.
    let experts: [ExpertActivations?]
    let expertScratch: ExpertActivations.Scratch?
    /// The global batch index of its first sample (expert parallelism's holders key gradients by it).
    var firstSample = 0
    /// Sequences of the global batch the loss averages over (the load-balancing loss's gradient is scaled by it).
    var lossSequences: Int

    /// `local` gives the tensor-parallel shard's attention channels, heads and MLP width;
    /// `localSequence` the positions of each sequence it holds outside them; `expertMembers` the
    /// expert-parallel group whose rows this rank's experts may serve.
    init(spec: ModelSpec, batch: Int, sequence: Int, local: TensorShard.Dimensions, localSequence: Int, expertMembers: Int = 1,
         positions: Attention.Positions? = nil, contextSize: Int = 1) {
        self.batch = batch
        self.sequence = sequence
        self.localSequence = localSequence
        let positions = positions ?? Attention.Positions(sequence: sequence, rows: [0..<sequence]), whole = positions.sequence
        self.positions = positions
        let context = whole > sequence
        keyValues = FloatBuffer(count: context ? batch * whole * 2 * local.channels : 0)
        dKeyValues = FloatBuffer(count: context ? batch * whole * 2 * local.channels : 0)
        sampleTokens = .allocate(capacity: context ? batch / contextSize * whole : 0)
        let rows = batch * sequence, c = spec.dModel, h = local.hidden, layers = spec.layers, cl = local.channels
        let held = batch * localSequence, split = localSequence < sequence
        func many(_ count: Int) -> [FloatBuffer] { (0..<layers).map { _ in FloatBuffer(count: count) } }
        tokens = .allocate(capacity: rows)
        targets = .allocate(capacity: rows)
        residual = (0...layers).map { _ in FloatBuffer(count: held * c) }
        afterAttention = many(held * c)
        ln1 = many(held * c); ln1Mean = many(held); ln1Rstd = many(held)
        qkv = many(rows * 3 * cl)
        probabilities = many(batch * local.heads * sequence * whole)
        attention = many(rows * cl)
        ln2 = many(held * c); ln2Mean = many(held); ln2Rstd = many(held)
        // An MoE block keeps its experts' hidden units in `experts` instead.
        func mlp() -> [FloatBuffer] { (0..<layers).map { FloatBuffer(count: spec.isExpertLayer($0) ? 0 : rows * h) } }
        fc = mlp(); gelu = mlp(); geluTanh = mlp()
        lnf = FloatBuffer(count: rows * c); lnfMean = FloatBuffer(count: held); lnfRstd = FloatBuffer(count: held)
        logits = FloatBuffer(count: rows * spec.vocabulary)
        losses = FloatBuffer(count: rows)
        dResidual = FloatBuffer(count: held * c)
        dNormed = FloatBuffer(count: rows * c)
        dQKV = FloatBuffer(count: rows * 3 * cl)
        dAttention = FloatBuffer(count: rows * cl)
        dHidden = FloatBuffer(count: rows * h)
        attentionScratch = FloatBuffer(count: max(1, Parallel.threads) * whole * whole)
        normedLocal = FloatBuffer(count: split ? held * c : 0)
        partial = FloatBuffer(count: split ? rows * c : 0)
        dGathered = FloatBuffer(count: split ? rows * c : 0)
        gatheredNorm = FloatBuffer(count: split ? rows * c : 0)
        experts = (0..<layers).map { l in
            spec.moe.flatMap { spec.isExpertLayer(l) ? ExpertActivations(rows: rows, moe: $0, channels: c, members: expertMembers) : nil }
        }
        expertScratch = spec.moe.map { ExpertActivations.Scratch(rows: rows, moe: $0, channels: c, members: expertMembers) }
        lossSequences = batch
    }

    /// Bytes of every buffer (what a micro-batch in flight costs this rank).
    var bytes: Int {
        let lists = [residual, afterAttention, ln1, ln1Mean, ln1Rstd, qkv, probabilities, attention, ln2, ln2Mean, ln2Rstd, fc, gelu, geluTanh]
        let single = [lnf, lnfMean, lnfRstd, logits, losses, dResidual, dNormed, dQKV, dAttention, dHidden, attentionScratch, keyValues, dKeyValues,
                      normedLocal, partial, dGathered, gatheredNorm] + experts.flatMap { $0?.buffers ?? [] } + (expertScratch?.buffers ?? [])
        let floats = lists.joined().reduce(0) { $0 + $1.count } + single.reduce(0) { $0 + $1.count }
        return floats * MemoryLayout<Float>.stride + 2 * batch * sequence * MemoryLayout<Int32>.stride
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
        sampleTokens.deallocate()
    }
}
