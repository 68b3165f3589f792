import OpLog
import Parallelism
import Tensor

extension GPT {
    func forward(_ a: Activations) throws {
        try forward(a, layers: 0..<spec.layers, embed: true, head: true)
    }

    /// Runs `layers` (a pipeline stage): from the token embedding when `embed`, else from
    /// `a.residual[layers.lowerBound]`; through the final LayerNorm and logits when `head`.
    /// Under tensor parallelism each block computes its heads and MLP columns and the g
    /// operator sums the row-parallel projections over the group (two all-reduces a block).
    /// Under sequence parallelism the LayerNorms and residual additions run on this shard's
    /// positions only: each LayerNorm's output is all-gathered before the split products and
    /// each row-parallel sum is reduce-scattered back to the shard's positions.
    func forward(_ a: Activations, layers: Range<Int>, embed: Bool, head: Bool) throws {
        let b = a.batch, t = a.sequence, rows = b * t, held = b * a.localSequence
        let c = spec.dModel, local = shard.dimensions(spec), cl = local.channels, hl = local.hidden
        let r = shard.index, split = shard.size > 1
        let shape = Attention.Shape(batch: b, sequence: t, channels: cl, heads: local.heads)
        let units = ParameterUnit.forward(layers: layers, embed: embed, head: head), first = embed ? 1 : 0
        if embed {
            try using(units, 0) {
                // Replicated over the tensor group: under sequence parallelism each shard keeps its positions.
                let out = shard.sequenceParallel ? a.partial.pointer : a.residual[0].pointer
                kernel(.embeddingForward, rows * c) {
                    guard context.size == 1 else { return embedHeldPositions(a, into: out) }
                    Embedding.forward(out: out, tokens: a.tokens, wte: pointer("wte"), wpe: pointer("wpe"),
                                      batch: b, sequence: t, channels: c)
                }
                if shard.sequenceParallel { shard.takeSequence(out, into: a.residual[0].pointer, batch: b, sequence: t, width: c) }
            }
        }
        for l in layers {
            try using(units, first + l - layers.lowerBound) {
                let x = a.residual[l].pointer, p = "h\(l)."
                let normed = try layerNorm(a, inp: x, name: p + "ln1", out: a.ln1[l], mean: a.ln1Mean[l], rstd: a.ln1Rstd[l], gathered: a.gatheredNorm)
                if split {
                    // Column-parallel QKV: this shard's rows of each of the Q, K and V sections.
                    for s in 0..<3 {
                        let row = s * c + r * cl
                        Linear.forward(out: a.qkv[l].pointer + s * cl, inp: normed, weight: pointer(p + "attn.qkv.w") + row * c,
                                       bias: pointer(p + "attn.qkv.b") + row, m: rows, k: c, n: cl, ldOut: 3 * cl)
                    }
                } else {
                    Linear.forward(out: a.qkv[l].pointer, inp: normed, weight: pointer(p + "attn.qkv.w"),
                                   bias: pointer(p + "attn.qkv.b"), m: rows, k: c, n: 3 * c)
                }
                // Scores (q·kᵀ) and mixing (p·v): 2 · head size FLOPs each per score element.
                if context.size > 1 {
                    try ringAttentionForward(a, layer: l, shape: shape)
                } else {
                    kernel(.attentionForward, b * local.heads * t * t, flops: 4 * Double(spec.headSize * b * local.heads * t * t)) {
                        Attention.forward(out: a.attention[l].pointer, probabilities: a.probabilities[l].pointer, qkv: a.qkv[l].pointer, shape: shape)
                    }
                }
                let mid = a.afterAttention[l].pointer
                try rowParallel(a, out: mid, inp: a.attention[l].pointer, weight: p + "attn.proj.w", bias: p + "attn.proj.b",
                                local: cl, full: c)
                kernel(.residual, held * c) { Elementwise.accumulate(mid, x, count: held * c) }
                let normed2 = try layerNorm(a, inp: mid, name: p + "ln2", out: a.ln2[l], mean: a.ln2Mean[l], rstd: a.ln2Rstd[l],
                                            gathered: a.gatheredNorm)
                let out = a.residual[l + 1].pointer
                if spec.isExpertLayer(l) {
                    try experts(a, layer: l, normed: normed2, out: out)
                } else {
                    Linear.forward(out: a.fc[l].pointer, inp: normed2, weight: pointer(p + "mlp.fc.w") + r * hl * c,
                                   bias: pointer(p + "mlp.fc.b") + r * hl, m: rows, k: c, n: hl)
                    kernel(.geluForward, rows * hl) { GELU.forward(a.gelu[l].pointer, a.fc[l].pointer, count: rows * hl, tanhOut: a.geluTanh[l].pointer) }
                    try rowParallel(a, out: out, inp: a.gelu[l].pointer, weight: p + "mlp.proj.w", bias: p + "mlp.proj.b",
                                    local: hl, full: spec.mlpHidden)
                }
                kernel(.residual, held * c) { Elementwise.accumulate(out, mid, count: held * c) }
            }
        }
        guard head else { return }
        try using(units, units.count - 1) {
            // The replicated head reads the final norm gathered: it is kept whole for its backward pass.
            try layerNorm(a, inp: a.residual[spec.layers].pointer, name: "lnf", out: shard.sequenceParallel ? a.normedLocal : a.lnf,
                          mean: a.lnfMean, rstd: a.lnfRstd, gathered: a.lnf)
            // Tied output projection: logits = lnf · wteᵀ.
            Linear.forward(out: a.logits.pointer, inp: a.lnf.pointer, weight: pointer("wte"), bias: nil, m: rows, k: c, n: spec.vocabulary)
        }
    }

    /// LayerNorm `name` of the rows this rank holds into `out`; returns its output over whole
    /// sequences (the split products read every position): `out` itself, or under sequence
    /// parallelism `gathered`, where it is all-gathered.
    @discardableResult
    private func layerNorm(_ a: Activations, inp: UnsafePointer<Float>, name: String, out: FloatBuffer, mean: FloatBuffer, rstd: FloatBuffer,
                           gathered: FloatBuffer) throws -> UnsafePointer<Float> {
        let c = spec.dModel, held = a.batch * a.localSequence
        kernel(.layerNormForward, held * c) {
            LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: inp,
                              weight: pointer(name + ".w"), bias: pointer(name + ".b"), rows: held, columns: c)
        }
        return try wholeSequences(out, a, into: gathered)
    }

    /// `local` (rows this rank holds) over whole sequences: itself, or gathered into `into` under
    /// sequence parallelism.
    func wholeSequences(_ local: FloatBuffer, _ a: Activations, into: FloatBuffer) throws -> UnsafePointer<Float> {
        guard shard.sequenceParallel else { return UnsafePointer(local.pointer) }
        try shard.gatherSequence(local.pointer, into: into.pointer, batch: a.batch, sequence: a.sequence, width: spec.dModel)
        return UnsafePointer(into.pointer)
    }
}

extension GPT {
    /// Runs one of the plan's kernels over `elements`, logged as such when an `OpLog` is installed.
    @inline(__always)
    func kernel<T>(_ kind: ElementKernel, _ elements: Int, flops: Double = 0, _ body: () throws -> T) rethrows -> T {
        try OpLog.kernel(kind.rawValue, elements: elements, flops: flops, body)
    }
}
