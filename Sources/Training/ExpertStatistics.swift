import Collectives
import Workload

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
