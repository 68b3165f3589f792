import Workload

/// An MoE block's feed-forward half in the order fleet's trainer runs it (`GPT+Experts`):
/// the router product, routing, dispatch, each routed expert's MLP over its tokens, then
/// the shared experts' over every token, and the gate-weighted combine. Each routed
/// expert is given the balanced load (rows · top-k / experts, at most its capacity); a
/// run's own counts depend on the routing, so its products are marked `routed`. Under
/// tensor parallelism (simulated only) each expert's MLP is split like the dense one and
/// the combined output, and backward the dispatched input gradient, are summed over the group.
/// Under expert parallelism (simulated only) a rank runs its experts/ep experts over the tokens
/// every member of its group sent them: an all-to-all after the dispatch and before the combine
/// (backward: after the combine's backward and before the dispatch's); the busiest rank's first
/// expert takes `hotExpert` times the balanced load.
extension StageCompute {
    private var moe: MixtureOfExperts { model.moe! }
    private var slots: Int { rows * moe.topK }

    /// Tokens one routed expert takes when the router spreads them evenly (from every member of its expert-parallel group).
    var balancedLoad: Int {
        let even = (slots * ep + moe.experts - 1) / moe.experts
        return min(even, moe.capacity(sequence: sequence) * sequences * ep)
    }

    /// The loads of this rank's experts: the balanced one, the first `hotExpert` times it.
    private var loads: [Int] {
        (0..<(moe.experts / ep)).map { $0 == 0 ? Int((Double(balancedLoad) * hotExpert).rounded(.up)) : balancedLoad }
    }

    /// The tokens' trip to or from the experts on the other members of the group (each rank's slots, all of them handed in).
    private var exchange: [StepOp] { ep > 1 ? [.collective(.allToAll, group: .expert, bytes: bytes(slots * c))] : [] }

    private var expertSections: [Int] { model.gatedMLP ? [moe.expertHidden, moe.expertHidden] : [moe.expertHidden] }

    /// One expert's MLP over `m` rows: input product, GELU, output product.
    private func expertForward(m: Int, routed: Bool) -> [StepOp] {
        let hidden = moe.expertHidden / tp
        return [.matmul(GEMMShape(m: m, n: expertSections.reduce(0, +) / tp, k: c, transB: true, routed: routed)),
                .kernel(.geluForward, elements: m * hidden, flops: .zero),
                .matmul(GEMMShape(m: m, n: c, k: hidden, transB: true, routed: routed))]
    }

    /// Its backward pass: output product's input and parameter gradients, GELU, input product's.
    private func expertBackward(m: Int, routed: Bool) -> [StepOp] {
        let hidden = moe.expertHidden / tp, input = expertSections.reduce(0, +) / tp
        let bias = { (elements: Int) -> [StepOp] in model.biases ? [.kernel(.residual, elements: elements, flops: .zero)] : [] }
        return [.matmul(GEMMShape(m: m, n: hidden, k: c, routed: routed)),
                .matmul(GEMMShape(m: c, n: hidden, k: m, transA: true, routed: routed))] + bias(m * c)
            + [.kernel(.geluBackward, elements: m * hidden, flops: .zero),
               .matmul(GEMMShape(m: m, n: c, k: input, routed: routed)),
               .matmul(GEMMShape(m: input, n: c, k: m, transA: true, routed: routed))] + bias(m * input)
    }

    var expertsForward: [StepOp] {
        var ops: [StepOp] = [.matmul(GEMMShape(m: rows, n: moe.experts, k: c, transB: true)),
                             .kernel(.expertRoute, elements: rows * moe.experts, flops: .zero),
                             .kernel(.expertDispatch, elements: slots * c, flops: .zero)] + exchange
        for load in loads { ops += expertForward(m: load, routed: true) }
        ops += exchange
        for _ in 0..<moe.sharedExperts { ops += expertForward(m: rows, routed: false) }
        ops.append(.kernel(.expertCombine, elements: slots * c, flops: .zero))
        if tp > 1 { ops.append(tensorSum) }
        return ops
    }

    var expertsBackward: [StepOp] {
        var ops: [StepOp] = [.kernel(.expertCombineBackward, elements: slots * c, flops: .zero)] + exchange
        for load in loads { ops += expertBackward(m: load, routed: true) }
        ops += exchange
        for _ in 0..<moe.sharedExperts { ops += expertBackward(m: rows, routed: false) }
        ops.append(.kernel(.expertDispatch, elements: slots * c, flops: .zero))
        if tp > 1 { ops.append(tensorSum) }
        ops.append(.kernel(.expertRouteBackward, elements: rows * moe.experts, flops: .zero))
        ops.append(.matmul(GEMMShape(m: rows, n: c, k: moe.experts)))
        ops.append(.matmul(GEMMShape(m: moe.experts, n: c, k: rows, transA: true)))
        return ops
    }
}
