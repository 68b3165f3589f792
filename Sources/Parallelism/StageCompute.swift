import Workload

/// The compute of one micro-batch of one pipeline stage on one tensor-parallel rank, in the
/// order fleet's trainer runs it (`GPT+Forward`, `GPT+Backward`, Megatron's split): column-
/// parallel QKV and MLP input (one product per section when split), row-parallel output
/// projections followed by the g operator's all-reduce, the f operator's all-reduce after
/// the column-parallel input gradients; norms, embeddings and the head replicated.
struct StageCompute {
    let model: ModelSpec
    let tp: Int
    let sequences: Int
    let sequence: Int
    let bytesPerElement: Int

    var rows: Int { sequences * sequence }
    private var c: Int { model.dModel }
    private var qkvSections: [Int] { [c, model.kvHeads * model.headSize, model.kvHeads * model.headSize] }
    private var mlpSections: [Int] { model.gatedMLP ? [model.mlpHidden, model.mlpHidden] : [model.mlpHidden] }
    /// Score elements of this rank's heads (the whole T×T square).
    private var scores: Int { sequences * (model.heads / tp) * sequence * sequence }
    private var tensorAllReduce: StepOp { .collective(.allReduce, group: .tensor, bytes: Bytes(elements: rows * c, of: bytesPerElement)) }

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
            ops.append(tensorAllReduce)
            if model.biases { ops.append(.kernel(.residual, elements: rows * c, flops: .zero)) }
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
            ops.append(.kernel(.layerNormForward, elements: rows * c, flops: .zero))
            ops += forwardProducts(sections: qkvSections, k: c)
            // Scores (q·kᵀ) and mixing (p·v): 2·head size each per score element.
            ops.append(.kernel(.attentionForward, elements: scores, flops: FLOPs(4 * headSize * Double(scores))))
            ops += rowParallel(k: c / tp)
            ops.append(.kernel(.residual, elements: rows * c, flops: .zero))
            ops.append(.kernel(.layerNormForward, elements: rows * c, flops: .zero))
            ops += forwardProducts(sections: mlpSections, k: c)
            ops.append(.kernel(.geluForward, elements: rows * hidden, flops: .zero))
            ops += rowParallel(k: hidden)
            ops.append(.kernel(.residual, elements: rows * c, flops: .zero))
        }
        if head {
            ops += gather(.head)
            ops.append(.kernel(.layerNormForward, elements: rows * c, flops: .zero))
            ops.append(.matmul(GEMMShape(m: rows, n: model.vocabulary, k: c, transB: true)))
            if loss { ops.append(.kernel(.crossEntropy, elements: rows * model.vocabulary, flops: .zero)) }
        }
        return ops
    }

    /// Input gradient `dinp = dout · W` of a column-parallel layer (per section when split),
    /// then the f operator's sum over the group.
    private func columnInputGradient(sections: [Int]) -> [StepOp] {
        guard tp > 1 else { return [.matmul(GEMMShape(m: rows, n: c, k: sections.reduce(0, +)))] }
        return sections.map { .matmul(GEMMShape(m: rows, n: c, k: $0 / tp)) } + [tensorAllReduce]
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
            ops.append(.kernel(.layerNormBackward, elements: rows * c, flops: .zero))
            ops += finished(plan.index(of: "lnf.w")!)
        }
        for l in layers.reversed() {
            ops += gather(.layer(l))
            // MLP output projection (row-parallel): input gradient, then weight and bias.
            ops.append(.matmul(GEMMShape(m: rows, n: hidden, k: c)))
            ops += rowParameterGradients(k: hidden)
            ops.append(.kernel(.geluBackward, elements: rows * hidden, flops: .zero))
            ops += columnInputGradient(sections: mlpSections)
            ops += parameterGradients(sections: mlpSections, k: c)
            ops.append(.kernel(.layerNormBackward, elements: rows * c, flops: .zero))
            ops.append(.matmul(GEMMShape(m: rows, n: c / tp, k: c)))
            ops += rowParameterGradients(k: c / tp)
            ops.append(.kernel(.attentionBackward, elements: scores, flops: FLOPs(8 * headSize * Double(scores))))
            ops += columnInputGradient(sections: qkvSections)
            ops += parameterGradients(sections: qkvSections, k: c)
            ops.append(.kernel(.layerNormBackward, elements: rows * c, flops: .zero))
            ops += finished(plan.index(of: "h\(l).ln1.w")!)
        }
        if embed {
            ops.append(.kernel(.embeddingBackward, elements: rows * c, flops: .zero))
            ops += finished(0)
        }
        return ops
    }
}
