import OpLog
import Parallelism
import Tensor
import Workload

/// An MoE block's feed-forward half (`ModelSpec.moe`), in place of the dense MLP: the router
/// (a bias-free linear layer to one logit per expert), top-k routing (`ExpertRouting`), each
/// expert's GELU MLP over the tokens sent to it, and the gate-weighted sum back per token.
/// Under expert parallelism (`expertShard`) the dispatched rows go to their expert's holder and
/// the outputs come back (`GPT+ExpertExchange`); routing and combining stay on the token's own
/// rank. The experts' products are logged as routed (`OpLog.routed`): their row counts depend
/// on where the tokens went, so the plan can only give the balanced load.
extension GPT {
    /// Refuses layouts the trainer cannot run a mixture of experts in (the simulator prices them all).
    public static func checkExperts(_ layout: ParallelLayout, model: ModelSpec) throws {
        guard model.moe != nil, layout.tp > 1 else { return }
        throw ParallelLayout.Invalid.reason("\(model.name)'s experts are not split by tensor parallelism in fleet's trainer (--tp \(layout.tp)"
            + (layout.sequenceParallel ? " with --sequence-parallel" : "") + "); train it with --dp, --ep and --pp, or simulate the layout with fleet simulate")
    }

    /// `out = Σ gates · expert(normed)` over `a`'s rows for MoE block `layer`.
    func experts(_ a: Activations, layer l: Int, normed: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) throws {
        guard let moe = spec.moe, let x = a.experts[l] else { preconditionFailure("block \(l) is not an MoE block") }
        let rows = a.batch * a.sequence, c = spec.dModel, p = "h\(l).moe."
        Linear.forward(out: x.logits.pointer, inp: normed, weight: pointer(p + "router.w"), bias: nil, m: rows, k: c, n: moe.experts)
        let routing = kernel(.expertRoute, rows * moe.experts) {
            ExpertRouting(logits: x.logits.pointer, rows: rows, experts: moe.experts, topK: moe.topK, sequence: a.sequence,
                          capacity: moe.capacity(sequence: a.sequence))
        }
        x.routing = routing
        kernel(.expertDispatch, rows * moe.topK * c) { routing.dispatch(normed, into: x.input.pointer, width: c) }
        if expertShard.size > 1 { x.served = try sendTokens(a, x, routing) }
        for (k, e) in expertShard.held.enumerated() {
            let (first, n) = servedRows(x, routing, expert: k)
            OpLog.routed { expertForward(x, layer: l, expert: e, first: first, rows: n) }
        }
        if expertShard.size > 1 { try returnOutputs(x, routing) }
        kernel(.expertCombine, rows * moe.topK * c) { routing.combine(x.output.pointer, into: out, width: c) }
    }

    /// Backward of `experts`: from `dout` (the block output's gradient over `a`'s rows), the
    /// experts' and router's parameter gradients, and the input's gradient into `dinp` (overwritten).
    func expertsBackward(_ a: Activations, layer l: Int, dout: UnsafePointer<Float>, normed: UnsafePointer<Float>,
                         dinp: UnsafeMutablePointer<Float>) throws {
        guard let moe = spec.moe, let x = a.experts[l], let routing = x.routing, let d = a.expertScratch else {
            preconditionFailure("block \(l) has no routing from a forward pass")
        }
        let rows = a.batch * a.sequence, c = spec.dModel, p = "h\(l).moe."
        let dGates = kernel(.expertCombineBackward, rows * moe.topK * c) {
            routing.combineBackward(dout, expertOut: x.output.pointer, dExpertOut: d.dOutput.pointer, width: c)
        }
        let parallel = expertShard.size > 1
        if parallel { try sendOutputGradients(x, d, routing) }
        // Deterministic mode under expert parallelism: each member's samples' part of the held
        // experts' gradients is formed apart (the node that member's micro-batch is of the batch
        // tree) and handed on, to be summed in tree order with the rest.
        let nodes = parallel && deterministic ? x.served.map { ExpertGradientNodes(model: self, layer: l, served: $0, batch: a.batch) } : nil
        for (k, e) in expertShard.held.enumerated() {
            let (first, n) = servedRows(x, routing, expert: k)
            OpLog.routed {
                expertBackward(x, d, layer: l, expert: e, first: first, rows: n) { name, dOut, inp, width, outputs in
                    if let nodes, let served = x.served {
                        for member in 0..<served.members {
                            let at = served.start(expert: k, member: member) - first
                            expertParameterGradients(name, dout: dOut + at * outputs, inp: inp + at * width,
                                                     samples: served.sampleRanges(member: member, expert: k), k: width, n: outputs,
                                                     into: nodes.destination(name, member: member))
                        }
                    } else {
                        // Each sample's rows, for deterministic mode's per-sample sums (one range will do otherwise).
                        let samples = parallel ? [0..<n] : routing.sampleRanges(expert: e, samples: a.batch)
                        expertParameterGradients(name, dout: dOut, inp: inp, samples: samples, k: width, n: outputs)
                    }
                }
            }
        }
        nodes?.hand(to: expertGradientNodes)
        if parallel { try returnInputGradients(x, d, routing) }
        kernel(.expertDispatch, rows * moe.topK * c) {
            dinp.update(repeating: 0, count: rows * c)
            routing.dispatchBackward(d.dInput.pointer, into: dinp, width: c)
        }
        kernel(.expertRouteBackward, rows * moe.experts) {
            routing.logitGradients(dGates: dGates, balanceScale: Float(moe.auxLossWeight) / Float(a.lossSequences), into: d.dLogits.pointer)
        }
        Linear.inputGradient(dinp: dinp, dout: d.dLogits.pointer, weight: pointer(p + "router.w"), m: rows, k: c, n: moe.experts, accumulate: true)
        try weightGradient(gradient(p + "router.w"), dout: d.dLogits.pointer, inp: normed, batch: a.batch, sequence: a.sequence, k: c, n: moe.experts)
    }

    /// The first row and row count, in the served buffers, of held expert `k`'s rows.
    private func servedRows(_ x: ExpertActivations, _ routing: ExpertRouting, expert k: Int) -> (Int, Int) {
        if let served = x.served { return (served.expertStart(k), served.rows(expert: k)) }
        return (routing.starts[k], routing.starts[k + 1] - routing.starts[k])
    }

    /// Expert `e`'s MLP over `n` served rows from row `first`.
    private func expertForward(_ x: ExpertActivations, layer l: Int, expert e: Int, first: Int, rows n: Int) {
        let c = spec.dModel, h = spec.moe!.expertHidden, name = "h\(l).moe.e\(e)."
        Linear.forward(out: x.fc.pointer + first * h, inp: x.servedInput.pointer + first * c, weight: pointer(name + "fc.w"),
                       bias: pointer(name + "fc.b"), m: n, k: c, n: h)
        kernel(.geluForward, n * h) {
            GELU.forward(x.gelu.pointer + first * h, x.fc.pointer + first * h, count: n * h, tanhOut: x.geluTanh.pointer + first * h)
        }
        Linear.forward(out: x.servedOutput.pointer + first * c, inp: x.gelu.pointer + first * h, weight: pointer(name + "proj.w"),
                       bias: pointer(name + "proj.b"), m: n, k: h, n: c)
    }

    /// Backward of `expertForward`: the served rows' input gradients, and each layer's parameter
    /// gradients through `parameters(name, dout, inp, inputWidth, outputWidth)`.
    private func expertBackward(_ x: ExpertActivations, _ d: ExpertActivations.Scratch, layer l: Int, expert e: Int, first: Int, rows n: Int,
                                parameters: (String, UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void) {
        let c = spec.dModel, h = spec.moe!.expertHidden, name = "h\(l).moe.e\(e)."
        let dOut = d.servedDOutput.pointer + first * c, dHidden = d.dHidden.pointer + first * h
        Linear.inputGradient(dinp: dHidden, dout: dOut, weight: pointer(name + "proj.w"), m: n, k: h, n: c, accumulate: false)
        parameters(name + "proj", dOut, x.gelu.pointer + first * h, h, c)
        // The GELU output is not needed any more: its buffer takes the pre-activation gradient.
        let dPre = x.gelu.pointer + first * h
        kernel(.geluBackward, n * h) { GELU.backward(dPre, x.fc.pointer + first * h, tanh: x.geluTanh.pointer + first * h, dHidden, count: n * h) }
        Linear.inputGradient(dinp: d.servedDInput.pointer + first * c, dout: dPre, weight: pointer(name + "fc.w"), m: n, k: c, n: h,
                             accumulate: false)
        parameters(name + "fc", dPre, x.servedInput.pointer + first * c, c, h)
    }
}
