import Workload

/// The compute of one micro-batch of one pipeline stage on one tensor-parallel rank, in the
/// order fleet's trainer runs it (`GPT+Forward`, `GPT+Backward`, Megatron's split): column-
/// parallel QKV and MLP input (one product per section when split), row-parallel output
/// projections followed by the g operator's all-reduce, the f operator's all-reduce after
/// the column-parallel input gradients; norms, embeddings and the head replicated. Under
/// sequence parallelism the norms and residual additions run on the rank's `held` rows, each
/// norm's output is all-gathered before the split products, the sums are reduce-scattered, the
/// residual's gradient is all-gathered before each row-parallel backward (and before the
/// embeddings'), each norm's output is gathered again for the weight gradients that read it,
/// and the norms' parameter gradients are all-reduced over the group. Under context parallelism
/// (ring attention) the rank holds 1/cp of each sequence's positions: its queries meet every
/// key, so each attention gathers the group's K/V blocks round the ring (overlapped with the
/// scores) and its backward gathers them again and passes their gradients back round
/// (a reduce-scatter); scores are counted as a dense square as everywhere in the plan.
struct StageCompute {
    let model: ModelSpec
    let tp: Int
    let sequences: Int
    let sequence: Int
    let bytesPerElement: Int
    var sequenceParallel = false
    /// Expert parallelism: the group splitting the experts, and the busiest expert's load over the balanced one.
    var ep = 1
    var hotExpert = 1.0
    /// Context parallelism: the ring's size (`sequence` is then this rank's positions of each sequence).
    var cp = 1

    var rows: Int { sequences * sequence }
    /// Rows of the regions outside the split products this rank holds (1/tp of each sequence
    /// under sequence parallelism).
    var held: Int { sequenceParallel ? sequences * (sequence / tp) : rows }
    /// Elements of a pipeline message: the held rows of the residual (or of its gradient).
    var messageElements: Int { held * model.dModel }
    var c: Int { model.dModel }
    private var qkvSections: [Int] { [c, model.kvHeads * model.headSize, model.kvHeads * model.headSize] }
    private var mlpSections: [Int] { model.gatedMLP ? [model.mlpHidden, model.mlpHidden] : [model.mlpHidden] }
    /// Score elements of this rank's heads (its queries' rows of the whole T×T square).
    private var scores: Int { sequences * (model.heads / tp) * sequence * sequence * cp }
    /// Ring attention: this rank's K and V block, gathered round the context-parallel group.
    private var keyValues: [StepOp] {
        cp > 1 ? [.collective(.allGather, group: .context, bytes: bytes(rows * 2 * model.kvHeads * model.headSize / tp))] : []
    }
    /// Backward, the K and V blocks' gradients summed round the ring back to their ranks (the whole buffer, as plans count a reduce-scatter).
    private var keyValueGradients: [StepOp] {
        cp > 1 ? [.collective(.reduceScatter, group: .context, bytes: bytes(cp * rows * 2 * model.kvHeads * model.headSize / tp))] : []
    }
    func bytes(_ elements: Int) -> Bytes { Bytes(elements: elements, of: bytesPerElement) }
    /// The sum of a split product over the group: all-reduced, or reduce-scattered to the held rows.
    var tensorSum: StepOp {
        .collective(sequenceParallel ? .reduceScatter : .allReduce, group: .tensor, bytes: bytes(rows * c))
    }
    /// Sequence parallelism: the held rows' `rows × c` tensor gathered over the group (this rank's block).
    var sequenceGather: [StepOp] { sequenceParallel ? [.collective(.allGather, group: .tensor, bytes: bytes(held * c))] : [] }
    /// A LayerNorm's forward pass, gathered under sequence parallelism.
    private var normForward: [StepOp] { [.kernel(.layerNormForward, elements: held * c, flops: .zero)] + sequenceGather }
    /// A LayerNorm's backward pass; under sequence parallelism its parameters' gradients are summed over the group.
    private var normBackward: [StepOp] {
        [.kernel(.layerNormBackward, elements: held * c, flops: .zero)]
            + (sequenceParallel ? [.collective(.allReduce, group: .tensor, bytes: bytes(2 * c))] : [])
    }
    private var residual: StepOp { .kernel(.residual, elements: held * c, flops: .zero) }

    /// `out = inp · Wᵀ` for a layer of `sections` output rows (split over the group when
    /// column-parallel) and `k` inputs.
    private func forwardProducts(sections: [Int], k: Int) -> [StepOp] {
        if tp > 1 && sections.count > 1 { return sections.map { .matmul(GEMMShape(m: rows, n: $0 / tp, k: k, transB: true)) } }
        return [.matmul(GEMMShape(m: rows, n: sections.reduce(0, +) / tp, k: k, transB: true))]
    }

    /// Row-parallel output projection from `k` local inputs: the product, the sum over the
    /// group and, when split, the bias added after it (one shard adds it within the product).
    private func rowParallel(k: Int) -> [StepOp] {
        var ops: [StepOp] = [.matmul(GEMMShape(m: rows, n: c, k: k, transB: true))]
        if tp > 1 {
            ops.append(tensorSum)
            if model.biases { ops.append(residual) }
        }
        return ops
    }

    /// The forward pass; `gather(unit)` gives what must run before a unit's weights are used
    /// (ZeRO-3's all-gathers).
    func forward(layers: Range<Int>, embed: Bool, head: Bool, loss: Bool = true,
                 gather: (ParameterUnit) -> [StepOp] = { _ in [] }) -> [StepOp] {
        var ops: [StepOp] = []
        let headSize = Double(model.headSize), hidden = model.mlpHidden / tp
        if embed { ops += gather(.embeddings) + [.kernel(.embeddingForward, elements: rows * c, flops: .zero)] }
        for l in layers {
            ops += gather(.layer(l))
            ops += normForward
            ops += forwardProducts(sections: qkvSections, k: c)
            ops += keyValues
            // Scores (q·kᵀ) and mixing (p·v): 2·head size each per score element.
            ops.append(.kernel(.attentionForward, elements: scores, flops: FLOPs(4 * headSize * Double(scores))))
            ops += rowParallel(k: c / tp)
            ops.append(residual)
            ops += normForward
            if model.isExpertLayer(l) {
                ops += expertsForward
            } else {
                ops += forwardProducts(sections: mlpSections, k: c)
                ops.append(.kernel(.geluForward, elements: rows * hidden, flops: .zero))
                ops += rowParallel(k: hidden)
            }
            ops.append(residual)
        }
        if head {
            ops += gather(.head)
            ops += normForward
            ops.append(.matmul(GEMMShape(m: rows, n: model.vocabulary, k: c, transB: true)))
            if loss { ops.append(.kernel(.crossEntropy, elements: rows * model.vocabulary, flops: .zero)) }
        }
        return ops
    }

    /// Input gradient `dinp = dout · W` of a column-parallel layer (per section when split),
    /// then the f operator's sum over the group.
    private func columnInputGradient(sections: [Int]) -> [StepOp] {
        guard tp > 1 else { return [.matmul(GEMMShape(m: rows, n: c, k: sections.reduce(0, +)))] }
        return sections.map { .matmul(GEMMShape(m: rows, n: c, k: $0 / tp)) } + [tensorSum]
    }

    /// Weight (`dW += doutᵀ · inp`) and bias gradients of a layer with `sections` output rows
    /// and `k` inputs (per section when split).
    private func parameterGradients(sections: [Int], k: Int) -> [StepOp] {
        let pieces = tp > 1 ? sections.map { $0 / tp } : [sections.reduce(0, +)]
        return pieces.flatMap { n -> [StepOp] in
            [.matmul(GEMMShape(m: n, n: k, k: rows, transA: true))] + (model.biases ? [.kernel(.residual, elements: rows * n, flops: .zero)] : [])
        }
    }

    /// Weight and bias gradients of a row-parallel projection from `k` local inputs.
    private func rowParameterGradients(k: Int) -> [StepOp] {
        [.matmul(GEMMShape(m: c, n: k, k: rows, transA: true))] + (model.biases ? [.kernel(.residual, elements: rows * c, flops: .zero)] : [])
    }

    /// The backward pass; `finished(entry)` gives what may start once every parameter from
    /// buffer entry `entry` up has its final gradient (the data-parallel buckets).
    func backward(layers: Range<Int>, embed: Bool, head: Bool, plan: ShardPlan,
                  gather: (ParameterUnit) -> [StepOp] = { _ in [] }, finished: (Int) -> [StepOp]) -> [StepOp] {
        var ops: [StepOp] = []
        let headSize = Double(model.headSize), hidden = model.mlpHidden / tp
        if head {
            ops += gather(.head)
            ops.append(.matmul(GEMMShape(m: rows, n: c, k: model.vocabulary)))
            ops.append(.matmul(GEMMShape(m: model.vocabulary, n: c, k: rows, transA: true)))
            ops += normBackward
            ops += finished(plan.index(of: "lnf.w")!)
        }
        for l in layers.reversed() {
            ops += gather(.layer(l))
            ops += sequenceGather
            if model.isExpertLayer(l) {
                ops += expertsBackward
            } else {
                // MLP output projection (row-parallel): input gradient, then weight and bias.
                ops.append(.matmul(GEMMShape(m: rows, n: hidden, k: c)))
                ops += rowParameterGradients(k: hidden)
                ops.append(.kernel(.geluBackward, elements: rows * hidden, flops: .zero))
                ops += columnInputGradient(sections: mlpSections)
                // Sequence parallelism keeps a shard of each norm: gathered again for the weight gradients.
                ops += sequenceGather
                ops += parameterGradients(sections: mlpSections, k: c)
            }
            ops += normBackward
            ops += sequenceGather
            ops.append(.matmul(GEMMShape(m: rows, n: c / tp, k: c)))
            ops += rowParameterGradients(k: c / tp)
            ops += keyValues
            ops.append(.kernel(.attentionBackward, elements: scores, flops: FLOPs(8 * headSize * Double(scores))))
            ops += keyValueGradients
            ops += columnInputGradient(sections: qkvSections)
            ops += sequenceGather
            ops += parameterGradients(sections: qkvSections, k: c)
            ops += normBackward
            ops += finished(plan.index(of: "h\(l).ln1.w")!)
        }
        if embed {
            ops += sequenceGather
            ops.append(.kernel(.embeddingBackward, elements: rows * c, flops: .zero))
            ops += finished(0)
        }
        return ops
    }
}

extension StageCompute {
    /// One micro-batch of `layout`'s pipeline under `options`, on one tensor-parallel rank.
    init(model: ModelSpec, layout: ParallelLayout, options: StepOptions) {
        self.init(model: model, tp: layout.tp, sequences: layout.sequencesPerMicrobatch(batch: options.batch), sequence: options.sequence / layout.cp,
                  bytesPerElement: options.bytesPerElement, sequenceParallel: layout.sequenceParallel, ep: layout.ep, hotExpert: options.hotExpert,
                  cp: layout.cp)
    }
}
