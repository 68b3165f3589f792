import Tensor

extension GPT {
    /// Accumulates parameter gradients; expects `a.logits` to hold d(loss)/d(logits).
    func backward(_ a: Activations) throws {
        try backward(a, layers: 0..<spec.layers, embed: true, head: true)
    }

    /// The backward pass of a stage: from d(loss)/d(logits) in `a.logits` when `head`, else
    /// from the gradient already in `a.dResidual`; leaves the stage's input gradient in
    /// `a.dResidual` (or accumulates the embeddings' gradients when `embed`). Under tensor
    /// parallelism the f operator sums each LayerNorm output's gradient over the group.
    /// `finalized(offset)` is called as parts of the gradient become final: everything this
    /// stage owns at flat offsets ≥ `offset` (except the tied embedding) will not change again.
    func backward(_ a: Activations, layers: Range<Int>, embed: Bool, head: Bool,
                  finalized: ((Int) throws -> Void)? = nil) throws {
        let b = a.batch, t = a.sequence, rows = b * t
        let c = spec.dModel, local = shard.dimensions(spec), cl = local.channels, hl = local.hidden
        let r = shard.index, split = shard.size > 1
        let shape = Attention.Shape(batch: b, sequence: t, channels: cl, heads: local.heads)
        let dResidual = a.dResidual.pointer, dNormed = a.dNormed.pointer
        if head {
            Linear.backward(dinp: dNormed, dweight: gradient("wte"), dbias: nil, dout: a.logits.pointer, inp: a.lnf.pointer,
                            weight: pointer("wte"), m: rows, k: c, n: spec.vocabulary, accumulateInput: false)
            a.dResidual.zero()
            LayerNorm.backward(dinp: dResidual, dweight: gradient("lnf.w"), dbias: gradient("lnf.b"), dout: dNormed,
                               inp: a.residual[spec.layers].pointer, weight: pointer("lnf.w"), mean: a.lnfMean.pointer,
                               rstd: a.lnfRstd.pointer, rows: rows, columns: c)
            try finalized?(layout.entry("lnf.w").offset)
        }
        for l in layers.reversed() {
            let p = "h\(l).", mid = a.afterAttention[l].pointer, dHidden = a.dHidden.pointer
            // MLP: residual[l+1] = mid + proj(gelu(fc(ln2(mid)))); proj is row-parallel, fc column-parallel.
            let mlpProjection = r * hl
            Linear.backward(dinp: dHidden, dweight: gradient(p + "mlp.proj.w") + mlpProjection, dbias: gradient(p + "mlp.proj.b"),
                            dout: dResidual, inp: a.gelu[l].pointer, weight: pointer(p + "mlp.proj.w") + mlpProjection,
                            m: rows, k: hl, n: c, accumulateInput: false, ldWeight: spec.mlpHidden)
            // The GELU output is not needed any more: its buffer takes the pre-activation gradient.
            let dPreActivation = a.gelu[l].pointer
            GELU.backward(dPreActivation, a.fc[l].pointer, tanh: a.geluTanh[l].pointer, dHidden, count: rows * hl)
            Linear.backward(dinp: dNormed, dweight: gradient(p + "mlp.fc.w") + r * hl * c, dbias: gradient(p + "mlp.fc.b") + r * hl,
                            dout: dPreActivation, inp: a.ln2[l].pointer, weight: pointer(p + "mlp.fc.w") + r * hl * c,
                            m: rows, k: c, n: hl, accumulateInput: false)
            try shard.reduce(dNormed, count: rows * c)
            LayerNorm.backward(dinp: dResidual, dweight: gradient(p + "ln2.w"), dbias: gradient(p + "ln2.b"), dout: dNormed,
                               inp: mid, weight: pointer(p + "ln2.w"), mean: a.ln2Mean[l].pointer, rstd: a.ln2Rstd[l].pointer,
                               rows: rows, columns: c)
            // Attention: mid = residual[l] + proj(attention(qkv(ln1(residual[l])))).
            Linear.backward(dinp: a.dAttention.pointer, dweight: gradient(p + "attn.proj.w") + r * cl, dbias: gradient(p + "attn.proj.b"),
                            dout: dResidual, inp: a.attention[l].pointer, weight: pointer(p + "attn.proj.w") + r * cl,
                            m: rows, k: cl, n: c, accumulateInput: false, ldWeight: c)
            Attention.backward(dqkv: a.dQKV.pointer, dout: a.dAttention.pointer, qkv: a.qkv[l].pointer,
                               probabilities: a.probabilities[l].pointer, scratch: a.attentionScratch.pointer, shape: shape)
            if split {
                for s in 0..<3 {
                    let row = s * c + r * cl
                    Linear.backward(dinp: dNormed, dweight: gradient(p + "attn.qkv.w") + row * c, dbias: gradient(p + "attn.qkv.b") + row,
                                    dout: a.dQKV.pointer + s * cl, inp: a.ln1[l].pointer, weight: pointer(p + "attn.qkv.w") + row * c,
                                    m: rows, k: c, n: cl, accumulateInput: s > 0, ldOut: 3 * cl)
                }
            } else {
                Linear.backward(dinp: dNormed, dweight: gradient(p + "attn.qkv.w"), dbias: gradient(p + "attn.qkv.b"), dout: a.dQKV.pointer,
                                inp: a.ln1[l].pointer, weight: pointer(p + "attn.qkv.w"), m: rows, k: c, n: 3 * c, accumulateInput: false)
            }
            try shard.reduce(dNormed, count: rows * c)
            LayerNorm.backward(dinp: dResidual, dweight: gradient(p + "ln1.w"), dbias: gradient(p + "ln1.b"), dout: dNormed,
                               inp: a.residual[l].pointer, weight: pointer(p + "ln1.w"), mean: a.ln1Mean[l].pointer,
                               rstd: a.ln1Rstd[l].pointer, rows: rows, columns: c)
            try finalized?(layout.entry(p + "ln1.w").offset)
        }
        guard embed else { return }
        Embedding.backward(dwte: gradient("wte"), dwpe: gradient("wpe"), dout: dResidual, tokens: a.tokens,
                           batch: b, sequence: t, channels: c)
        try finalized?(0)
    }
}
