import OpLog
import Parallelism
import Tensor
import Workload

/// An MoE block's feed-forward half (`ModelSpec.moe`), in place of the dense MLP: the router
/// (a bias-free linear layer to one logit per expert), top-k routing (`ExpertRouting`), each
/// expert's GELU MLP over the tokens sent to it, and the gate-weighted sum back per token.
/// The experts' products are logged as routed (`OpLog.routed`): their row counts depend on
/// where the tokens went, so the plan can only give the balanced load.
extension GPT {
    /// Refuses layouts the trainer cannot run a mixture of experts in (the simulator prices them all).
    public static func checkExperts(_ layout: ParallelLayout, model: ModelSpec) throws {
        if layout.ep > 1 {
            throw ParallelLayout.Invalid.reason("expert parallelism (ep \(layout.ep)) is priced by fleet simulate (layout.ep in a scenario) but not run by fleet's trainer yet; train \(model.name) with --dp and --pp")
        }
        guard model.moe != nil, layout.tp > 1 else { return }
        throw ParallelLayout.Invalid.reason("\(model.name)'s experts are not split by tensor parallelism in fleet's trainer (--tp \(layout.tp)"
            + (layout.sequenceParallel ? " with --sequence-parallel" : "") + "); train it with --dp and --pp, or simulate the layout with fleet simulate")
    }

    /// `out = Σ gates · expert(normed)` over `a`'s rows for MoE block `layer`.
    func experts(_ a: Activations, layer l: Int, normed: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        guard let moe = spec.moe, let x = a.experts[l] else { preconditionFailure("block \(l) is not an MoE block") }
        let rows = a.batch * a.sequence, c = spec.dModel, h = moe.expertHidden, p = "h\(l).moe."
        Linear.forward(out: x.logits.pointer, inp: normed, weight: pointer(p + "router.w"), bias: nil, m: rows, k: c, n: moe.experts)
        let routing = kernel(.expertRoute, rows * moe.experts) {
            ExpertRouting(logits: x.logits.pointer, rows: rows, experts: moe.experts, topK: moe.topK, sequence: a.sequence,
                          capacity: moe.capacity(sequence: a.sequence))
        }
        x.routing = routing
        kernel(.expertDispatch, rows * moe.topK * c) { routing.dispatch(normed, into: x.input.pointer, width: c) }
        for e in 0..<moe.experts {
            let first = routing.starts[e], n = routing.starts[e + 1] - first, name = p + "e\(e)."
            OpLog.routed {
                Linear.forward(out: x.fc.pointer + first * h, inp: x.input.pointer + first * c, weight: pointer(name + "fc.w"),
                               bias: pointer(name + "fc.b"), m: n, k: c, n: h)
                kernel(.geluForward, n * h) {
                    GELU.forward(x.gelu.pointer + first * h, x.fc.pointer + first * h, count: n * h, tanhOut: x.geluTanh.pointer + first * h)
                }
                Linear.forward(out: x.output.pointer + first * c, inp: x.gelu.pointer + first * h, weight: pointer(name + "proj.w"),
                               bias: pointer(name + "proj.b"), m: n, k: h, n: c)
            }
        }
        kernel(.expertCombine, rows * moe.topK * c) { routing.combine(x.output.pointer, into: out, width: c) }
    }

    /// Backward of `experts`: from `dout` (the block output's gradient over `a`'s rows), the
    /// experts' and router's parameter gradients, and the input's gradient into `dinp` (overwritten).
    func expertsBackward(_ a: Activations, layer l: Int, dout: UnsafePointer<Float>, normed: UnsafePointer<Float>,
                         dinp: UnsafeMutablePointer<Float>) {
        guard let moe = spec.moe, let x = a.experts[l], let routing = x.routing, let d = a.expertScratch else {
            preconditionFailure("block \(l) has no routing from a forward pass")
        }
        let rows = a.batch * a.sequence, c = spec.dModel, h = moe.expertHidden, p = "h\(l).moe."
        let dGates = kernel(.expertCombineBackward, rows * moe.topK * c) {
            routing.combineBackward(dout, expertOut: x.output.pointer, dExpertOut: d.dOutput.pointer, width: c)
        }
        for e in 0..<moe.experts {
            let first = routing.starts[e], n = routing.starts[e + 1] - first, name = p + "e\(e)."
            let samples = routing.sampleRanges(expert: e, samples: a.batch)
            OpLog.routed {
                let dOut = d.dOutput.pointer + first * c, dHidden = d.dHidden.pointer + first * h
                Linear.inputGradient(dinp: dHidden, dout: dOut, weight: pointer(name + "proj.w"), m: n, k: h, n: c, accumulate: false)
                expertParameterGradients(name + "proj", dout: dOut, inp: x.gelu.pointer + first * h, samples: samples, k: h, n: c)
                // The GELU output is not needed any more: its buffer takes the pre-activation gradient.
                let dPre = x.gelu.pointer + first * h
                kernel(.geluBackward, n * h) { GELU.backward(dPre, x.fc.pointer + first * h, tanh: x.geluTanh.pointer + first * h, dHidden, count: n * h) }
                Linear.inputGradient(dinp: d.dInput.pointer + first * c, dout: dPre, weight: pointer(name + "fc.w"), m: n, k: c, n: h,
                                     accumulate: false)
                expertParameterGradients(name + "fc", dout: dPre, inp: x.input.pointer + first * c, samples: samples, k: c, n: h)
            }
        }
        kernel(.expertDispatch, rows * moe.topK * c) {
            dinp.update(repeating: 0, count: rows * c)
            routing.dispatchBackward(d.dInput.pointer, into: dinp, width: c)
        }
        kernel(.expertRouteBackward, rows * moe.experts) {
            routing.logitGradients(dGates: dGates, balanceScale: Float(moe.auxLossWeight) / Float(a.lossSequences), into: d.dLogits.pointer)
        }
        Linear.inputGradient(dinp: dinp, dout: d.dLogits.pointer, weight: pointer(p + "router.w"), m: rows, k: c, n: moe.experts, accumulate: true)
        weightGradient(gradient(p + "router.w"), dout: d.dLogits.pointer, inp: normed, batch: a.batch, sequence: a.sequence, k: c, n: moe.experts)
    }
}

/// What the router did in a forward pass, per MoE block.
public struct ExpertStatistics: Sendable, Equatable {
    /// The MoE blocks, in order.
    public var layers: [Int]
    /// Per block, the assignments each expert was chosen for (tokens × top-k in all, before dropping).
    public var tokensPerExpert: [[Int]]
    /// Per block, assignments dropped at an expert's capacity.
    public var dropped: [Int]
    /// Per block, each row's chosen experts, best first (rows × top-k); empty when summed over a step.
    public var chosen: [[Int]]
    /// The load-balancing loss, weighted, summed over blocks and averaged over the pass's sequences.
    public var balanceLoss: Float
    /// Per block, Switch's balance E · Σₑ fₑ · Pₑ averaged over the pass's sequences, unweighted (1 when perfectly even).
    public var balance: [Float] = []

    /// The busiest expert's tokens over the mean, per block (1: perfectly even).
    public var imbalance: [Double] {
        tokensPerExpert.map { counts in
            let mean = Double(counts.reduce(0, +)) / Double(max(1, counts.count))
            return mean > 0 ? Double(counts.max() ?? 0) / mean : 1
        }
    }
}

extension GPT {
    /// The routing of the last forward pass of `step` (nil for a dense model).
    public var expertStatistics: ExpertStatistics? { lastActivations.flatMap(expertStatistics) }

    /// The routing `a`'s last forward pass made, over the MoE blocks it ran.
    func expertStatistics(_ a: Activations) -> ExpertStatistics? {
        guard let moe = spec.moe else { return nil }
        var s = ExpertStatistics(layers: [], tokensPerExpert: [], dropped: [], chosen: [], balanceLoss: 0)
        for (l, x) in a.experts.enumerated() {
            guard let routing = x?.routing else { continue }
            s.layers.append(l)
            s.tokensPerExpert.append(routing.chosenCounts)
            s.dropped.append(routing.dropped)
            s.chosen.append(routing.chosen)
            s.balance.append(routing.balanceLoss.reduce(0, +) / Float(a.batch))
            s.balanceLoss += Float(moe.auxLossWeight) * s.balance.last!
        }
        return s
    }
}

extension DistributedTrainer {
    /// The step's routing over the global batch: each rank counts its micro-batches through its
    /// stage's MoE blocks (every count in its block's slot, zeros elsewhere), then the counts
    /// are summed over the data-parallel group and the replica (the plan's `routing` phase).
    func routingStatistics() throws -> ExpertStatistics? {
        guard let moe = configuration.model.moe else { return nil }
        let blocks = (0..<configuration.model.layers).filter(configuration.model.isExpertLayer), width = moe.experts + 2
        var counts = [Float](repeating: 0, count: blocks.count * width)
        for a in microActivations {
            guard let s = model.expertStatistics(a) else { continue }
            for (i, l) in s.layers.enumerated() {
                let slot = blocks.firstIndex(of: l)! * width
                for e in 0..<moe.experts { counts[slot + e] += Float(s.tokensPerExpert[i][e]) }
                counts[slot + moe.experts] += Float(s.dropped[i])
                counts[slot + moe.experts + 1] += s.balance[i] * Float(a.batch)
            }
        }
        if layout.dp > 1 { try groups.dp.allReduce(&counts) }
        if layout.tp * layout.pp > 1 { try groups.replica.allReduce(&counts) }
        let balance = blocks.indices.map { counts[$0 * width + moe.experts + 1] / Float(configuration.batch) }
        return ExpertStatistics(layers: blocks, tokensPerExpert: blocks.indices.map { b in (0..<moe.experts).map { Int(counts[b * width + $0]) } },
                                dropped: blocks.indices.map { Int(counts[$0 * width + moe.experts]) }, chosen: [],
                                balanceLoss: Float(moe.auxLossWeight) * balance.reduce(0, +), balance: balance)
    }
}
