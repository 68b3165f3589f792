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
    func forward(_ a: Activations, layers: Range<Int>, embed: Bool, head: Bool) throws {
        let b = a.batch, t = a.sequence, rows = b * t
        let c = spec.dModel, local = shard.dimensions(spec), cl = local.channels, hl = local.hidden
        let r = shard.index, split = shard.size > 1
        let shape = Attention.Shape(batch: b, sequence: t, channels: cl, heads: local.heads)
        let units = ParameterUnit.forward(layers: layers, embed: embed, head: head), first = embed ? 1 : 0
        if embed {
            try using(units, 0) {
                kernel(.embeddingForward, rows * c) {
                    Embedding.forward(out: a.residual[0].pointer, tokens: a.tokens, wte: pointer("wte"), wpe: pointer("wpe"),
                                      batch: b, sequence: t, channels: c)
                }
            }
        }
        for l in layers {
            try using(units, first + l - layers.lowerBound) {
                let x = a.residual[l].pointer, p = "h\(l)."
                kernel(.layerNormForward, rows * c) {
                    LayerNorm.forward(out: a.ln1[l].pointer, mean: a.ln1Mean[l].pointer, rstd: a.ln1Rstd[l].pointer, inp: x,
                                      weight: pointer(p + "ln1.w"), bias: pointer(p + "ln1.b"), rows: rows, columns: c)
                }
                if split {
                    // Column-parallel QKV: this shard's rows of each of the Q, K and V sections.
                    for s in 0..<3 {
                        let row = s * c + r * cl
                        Linear.forward(out: a.qkv[l].pointer + s * cl, inp: a.ln1[l].pointer, weight: pointer(p + "attn.qkv.w") + row * c,
                                       bias: pointer(p + "attn.qkv.b") + row, m: rows, k: c, n: cl, ldOut: 3 * cl)
                    }
                } else {
                    Linear.forward(out: a.qkv[l].pointer, inp: a.ln1[l].pointer, weight: pointer(p + "attn.qkv.w"),
                                   bias: pointer(p + "attn.qkv.b"), m: rows, k: c, n: 3 * c)
                }
                // Scores (q·kᵀ) and mixing (p·v): 2 · head size FLOPs each per score element.
                kernel(.attentionForward, b * local.heads * t * t, flops: 4 * Double(spec.headSize * b * local.heads * t * t)) {
                    Attention.forward(out: a.attention[l].pointer, probabilities: a.probabilities[l].pointer, qkv: a.qkv[l].pointer, shape: shape)
                }
                let mid = a.afterAttention[l].pointer
                try rowParallel(out: mid, inp: a.attention[l].pointer, weight: p + "attn.proj.w", bias: p + "attn.proj.b",
                                rows: rows, local: cl, full: c)
                kernel(.residual, rows * c) { Elementwise.accumulate(mid, x, count: rows * c) }
                kernel(.layerNormForward, rows * c) {
                    LayerNorm.forward(out: a.ln2[l].pointer, mean: a.ln2Mean[l].pointer, rstd: a.ln2Rstd[l].pointer, inp: mid,
                                      weight: pointer(p + "ln2.w"), bias: pointer(p + "ln2.b"), rows: rows, columns: c)
                }
                Linear.forward(out: a.fc[l].pointer, inp: a.ln2[l].pointer, weight: pointer(p + "mlp.fc.w") + r * hl * c,
                               bias: pointer(p + "mlp.fc.b") + r * hl, m: rows, k: c, n: hl)
                kernel(.geluForward, rows * hl) { GELU.forward(a.gelu[l].pointer, a.fc[l].pointer, count: rows * hl, tanhOut: a.geluTanh[l].pointer) }
                let out = a.residual[l + 1].pointer
                try rowParallel(out: out, inp: a.gelu[l].pointer, weight: p + "mlp.proj.w", bias: p + "mlp.proj.b",
                                rows: rows, local: hl, full: spec.mlpHidden)
                kernel(.residual, rows * c) { Elementwise.accumulate(out, mid, count: rows * c) }
            }
        }
        guard head else { return }
        try using(units, units.count - 1) {
            kernel(.layerNormForward, rows * c) {
                LayerNorm.forward(out: a.lnf.pointer, mean: a.lnfMean.pointer, rstd: a.lnfRstd.pointer, inp: a.residual[spec.layers].pointer,
                                  weight: pointer("lnf.w"), bias: pointer("lnf.b"), rows: rows, columns: c)
            }
            // Tied output projection: logits = lnf · wteᵀ.
            Linear.forward(out: a.logits.pointer, inp: a.lnf.pointer, weight: pointer("wte"), bias: nil, m: rows, k: c, n: spec.vocabulary)
        }
    }
}

extension GPT {
    /// Runs one of the plan's kernels over `elements`, logged as such when an `OpLog` is installed.
    @inline(__always)
    func kernel<T>(_ kind: ElementKernel, _ elements: Int, flops: Double = 0, _ body: () throws -> T) rethrows -> T {
        try OpLog.kernel(kind.rawValue, elements: elements, flops: flops, body)
    }
}
