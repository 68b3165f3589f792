/// Mixture of experts in place of some blocks' MLPs (Shazeer et al. 2017; GShard; Switch;
/// Mixtral; DeepSeek-V3): a router picks each token's `topK` of `experts` small MLPs, whose
/// outputs are summed weighted by the router's gates; `sharedExperts` more MLPs see every token.
public struct MixtureOfExperts: Sendable, Hashable, Codable {
    /// Routed experts per MoE block.
    public var experts: Int
    /// Experts each token is sent to.
    public var topK: Int
    /// Hidden width of one expert's MLP.
    public var expertHidden: Int
    /// Experts every token passes through besides its routed ones (DeepSeek's shared experts).
    public var sharedExperts: Int
    /// Blocks before the first MoE block keep a dense MLP (DeepSeek-V3: 3).
    public var firstDense: Int
    /// From `firstDense` on, every `interval`-th block is an MoE block (1: all; 2: every other, GShard).
    public var interval: Int
    /// Each expert takes at most ⌈factor · sequence · topK / experts⌉ tokens of a sequence; the
    /// rest of its assignments are dropped (the token keeps its residual). nil: no limit.
    /// Counted per sequence so every layout drops the same tokens.
    public var capacityFactor: Double?
    /// Weight of the load-balancing loss (Switch Transformer: E · Σₑ fₑ · Pₑ per sequence).
    public var auxLossWeight: Double

    public init(experts: Int, topK: Int, expertHidden: Int, sharedExperts: Int = 0, firstDense: Int = 0, interval: Int = 1,
                capacityFactor: Double? = nil, auxLossWeight: Double = 0.01) {
        self.experts = experts
        self.topK = topK
        self.expertHidden = expertHidden
        self.sharedExperts = sharedExperts
        self.firstDense = firstDense
        self.interval = interval
        self.capacityFactor = capacityFactor
        self.auxLossWeight = auxLossWeight
    }

    /// Whether block `layer` is an MoE block.
    public func isExpertLayer(_ layer: Int) -> Bool {
        layer >= firstDense && (layer - firstDense) % max(1, interval) == max(1, interval) - 1
    }

    /// Most tokens of one `sequence`-token sequence an expert takes (`sequence` without a capacity factor).
    public func capacity(sequence: Int) -> Int {
        guard let capacityFactor else { return sequence }
        let slots = capacityFactor * Double(sequence * topK) / Double(experts)
        return min(sequence, max(1, Int(slots.rounded(.up))))
    }
}

extension ModelSpec {
    /// Whether block `layer` replaces its MLP with experts.
    public func isExpertLayer(_ layer: Int) -> Bool { moe?.isExpertLayer(layer) ?? false }

    /// MoE blocks among the model's layers.
    public var expertLayers: Int { (0..<layers).filter(isExpertLayer).count }

    /// Parameters of one expert's MLP (matrices and biases).
    public var parametersPerExpert: Int {
        guard let moe else { return 0 }
        return (gatedMLP ? 3 : 2) * dModel * moe.expertHidden + (biases ? (gatedMLP ? 2 : 1) * moe.expertHidden + dModel : 0)
    }

    /// Matmul FLOPs of one token through an MoE block's router and the experts it reaches
    /// (its `topK` routed ones and the shared ones).
    var expertForwardFLOPsPerToken: Double {
        guard let moe else { return 0 }
        let perExpert = 2 * Double((gatedMLP ? 3 : 2) * dModel * moe.expertHidden)
        return 2 * Double(dModel * moe.experts) + Double(moe.topK + moe.sharedExperts) * perExpert
    }
}
