import Parallelism
import Tensor

extension GPT {
    /// Accumulates parameter gradients; expects `a.logits` to hold d(loss)/d(logits).
    func backward(_ a: Activations) throws {
        try backward(a, layers: 0..<spec.layers, embed: true, head: true)
    }

    /// The backward pass of a stage: from d(loss)/d(logits) in `a.logits` when `head`, else
    /// from the gradient already in `a.dResidual`; leaves the stage's input gradient in
    /// `a.dResidual` (or accumulates the embeddings' gradients when `embed`). Under tensor
    /// parallelism the f operator sums each LayerNorm output's gradient over the group; under
    /// sequence parallelism that sum is reduce-scattered to the shard's positions, and the
    /// residual's gradient is all-gathered before each row-parallel projection's backward.
    /// `finalized(offset)` is called as parts of the gradient become final: everything this
    /// stage owns at flat offsets ≥ `offset` (except the tied embedding) will not change again.
    func backward(_ a: Activations, layers: Range<Int>, embed: Bool, head: Bool,
                  finalized: ((Int) throws -> Void)? = nil) throws {
        let b = a.batch, t = a.sequence, rows = b * t
        let c = spec.dModel, local = shard.dimensions(spec), cl = local.channels
        let r = shard.index, split = shard.size > 1, sp = shard.sequenceParallel
        let shape = Attention.Shape(batch: b, sequence: t, channels: cl, heads: local.heads)
        let dResidual = a.dResidual.pointer, dNormed = a.dNormed.pointer
        // The residual's gradient over whole sequences (gathered under sequence parallelism).
        func gatheredResidualGradient() throws -> UnsafeMutablePointer<Float> {
            guard sp else { return dResidual }
            try shard.gatherSequence(dResidual, into: a.dGathered.pointer, batch: b, sequence: t, width: c)
            return a.dGathered.pointer
        }
        let units = ParameterUnit.backward(layers: layers, head: head), first = head ? 1 : 0
        if head {
            try using(units, 0) {
                Linear.inputGradient(dinp: dNormed, dout: a.logits.pointer, weight: pointer("wte"), m: rows, k: c, n: spec.vocabulary,
                                     accumulate: false)
                try weightGradient(outputProjectionGradient, dout: a.logits.pointer, inp: a.lnf.pointer, batch: b, sequence: t,
                               k: c, n: spec.vocabulary)
                a.dResidual.zero()
                // The head is replicated: each shard takes its positions of the final LayerNorm's gradient.
                if sp { shard.takeSequence(dNormed, into: a.normedLocal.pointer, batch: b, sequence: t, width: c) }
                try layerNorm(a, backward: "lnf", dout: sp ? a.normedLocal.pointer : dNormed, inp: a.residual[spec.layers].pointer,
                              weight: pointer("lnf.w"), mean: a.lnfMean.pointer, rstd: a.lnfRstd.pointer)
            }
            try finalized?(layout.entry("lnf.w").offset)
        }
        for l in layers.reversed() {
            try using(units, first + layers.upperBound - 1 - l) {
                let p = "h\(l).", mid = a.afterAttention[l].pointer, dOut = try gatheredResidualGradient()
                // residual[l+1] = mid + mlp(ln2(mid)): a dense MLP, or a mixture of experts.
                if spec.isExpertLayer(l) {
                    try expertsBackward(a, layer: l, dout: dOut, normed: a.ln2[l].pointer, dinp: dNormed)
                } else {
                    try mlpBackward(a, layer: l, dout: dOut)
                }
                try layerNorm(a, backward: p + "ln2", dout: dNormed, inp: mid, weight: pointer(p + "ln2.w"),
                              mean: a.ln2Mean[l].pointer, rstd: a.ln2Rstd[l].pointer)
                // Attention: mid = residual[l] + proj(attention(qkv(ln1(residual[l])))).
                let dMid = try gatheredResidualGradient()
                Linear.inputGradient(dinp: a.dAttention.pointer, dout: dMid, weight: pointer(p + "attn.proj.w") + r * cl,
                                     m: rows, k: cl, n: c, accumulate: false, ldWeight: c)
                try linearParameterGradients(p + "attn.proj", weightOffset: r * cl, dout: dMid, inp: a.attention[l].pointer,
                                         batch: b, sequence: t, k: cl, n: c, ldWeight: c)
                if context.size > 1 {
                    try ringAttentionBackward(a, layer: l, shape: shape)
                } else {
                    kernel(.attentionBackward, b * local.heads * t * t, flops: 8 * Double(spec.headSize * b * local.heads * t * t)) {
                        Attention.backward(dqkv: a.dQKV.pointer, dout: a.dAttention.pointer, qkv: a.qkv[l].pointer,
                                           probabilities: a.probabilities[l].pointer, scratch: a.attentionScratch.pointer, shape: shape)
                    }
                }
                try columnParallelInputGradient(a, dinp: dNormed, dout: a.dQKV.pointer, weight: p + "attn.qkv.w",
                                                sections: 3, sectionSize: c, width: cl, ldOut: 3 * cl)
                let normed = try wholeSequences(a.ln1[l], a, into: a.gatheredNorm)
                if split {
                    for s in 0..<3 {
                        let row = s * c + r * cl
                        try linearParameterGradients(p + "attn.qkv", weightOffset: row * c, biasOffset: row, dout: a.dQKV.pointer + s * cl,
                                                 inp: normed, batch: b, sequence: t, k: c, n: cl, ldOut: 3 * cl)
                    }
                } else {
                    try linearParameterGradients(p + "attn.qkv", dout: a.dQKV.pointer, inp: normed, batch: b, sequence: t, k: c, n: 3 * c)
                }
                try layerNorm(a, backward: p + "ln1", dout: dNormed, inp: a.residual[l].pointer, weight: pointer(p + "ln1.w"),
                              mean: a.ln1Mean[l].pointer, rstd: a.ln1Rstd[l].pointer)
            }
            try finalized?(layout.entry("h\(l).ln1.w").offset)
        }
        guard embed else { return }
        // The embeddings are replicated: under sequence parallelism they read the gathered gradient.
        let dEmbedded = try gatheredResidualGradient()
        try kernel(.embeddingBackward, rows * c) {
            try embeddingGradients(dout: dEmbedded, tokens: a.tokens, batch: b, sequence: t, sampleTokens: a.sampleTokens)
        }
        try finalized?(0)
    }

    /// A dense block's MLP backward from its output's gradient `dout` (whole sequences): proj is
    /// row-parallel, fc column-parallel; leaves ln2's output gradient in `a.dNormed`.
    private func mlpBackward(_ a: Activations, layer l: Int, dout dOut: UnsafeMutablePointer<Float>) throws {
        let b = a.batch, t = a.sequence, rows = b * t, c = spec.dModel, hl = shard.dimensions(spec).hidden, r = shard.index
        let p = "h\(l).", dHidden = a.dHidden.pointer, mlpProjection = r * hl
        Linear.inputGradient(dinp: dHidden, dout: dOut, weight: pointer(p + "mlp.proj.w") + mlpProjection,
                             m: rows, k: hl, n: c, accumulate: false, ldWeight: spec.mlpHidden)
        try linearParameterGradients(p + "mlp.proj", weightOffset: mlpProjection, dout: dOut, inp: a.gelu[l].pointer,
                                 batch: b, sequence: t, k: hl, n: c, ldWeight: spec.mlpHidden)
        // The GELU output is not needed any more: its buffer takes the pre-activation gradient.
        let dPreActivation = a.gelu[l].pointer
        kernel(.geluBackward, rows * hl) { GELU.backward(dPreActivation, a.fc[l].pointer, tanh: a.geluTanh[l].pointer, dHidden, count: rows * hl) }
        try columnParallelInputGradient(a, dinp: a.dNormed.pointer, dout: dPreActivation, weight: p + "mlp.fc.w",
                                        sections: 1, sectionSize: spec.mlpHidden, width: hl, ldOut: hl)
        // Sequence parallelism keeps its shard of the norm: gathered again for the weight gradient.
        try linearParameterGradients(p + "mlp.fc", weightOffset: r * hl * c, biasOffset: r * hl, dout: dPreActivation,
                                 inp: try wholeSequences(a.ln2[l], a, into: a.gatheredNorm), batch: b, sequence: t, k: c, n: hl)
    }

    /// A LayerNorm's backward pass over the rows this rank holds: accumulates its input gradient
    /// into `a.dResidual` and its parameters' gradients.
    private func layerNorm(_ a: Activations, backward name: String, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>) throws {
        let held = a.batch * a.localSequence
        let finish = kernel(.layerNormBackward, held * spec.dModel) {
            LayerNorm.inputGradient(dinp: a.dResidual.pointer, dout: dout, inp: inp, weight: weight, mean: mean, rstd: rstd,
                                    rows: held, columns: spec.dModel)
            return layerNormGradients(name, a, dout: dout, inp: inp, mean: mean, rstd: rstd)
        }
        try finish?()
    }
}
