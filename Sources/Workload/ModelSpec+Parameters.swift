/// The named parameters of a model, in the order of fleet's flat parameter buffer: the one
/// list that the trainer's buffer, checkpoints, tensor-parallel shards and the simulator's
/// byte counts are all derived from.
extension ModelSpec {
    /// What a parameter is for; tensor parallelism decides its split from this.
    public enum ParameterRole: String, Sendable, Hashable, Codable {
        case tokenEmbedding, positionEmbedding, norm
        /// Fused query/key/value projection: rows are the q, k and v sections.
        case qkvWeight, qkvBias
        case attentionOutputWeight, attentionOutputBias
        /// First MLP matrix (two stacked sections, gate and up, when gated).
        case mlpInputWeight, mlpInputBias
        case mlpOutputWeight, mlpOutputBias
        /// The output projection of an untied model (a tied one reuses the token embedding).
        case outputHead
        /// An MoE block's router (experts × d_model), replicated.
        case router
        /// A routed expert's MLP matrices and biases (split like the dense MLP's under tensor parallelism).
        case expertInputWeight, expertInputBias, expertOutputWeight, expertOutputBias
    }

    public struct Parameter: Sendable, Hashable {
        public let name: String
        public let shape: [Int]
        public let role: ParameterRole
        /// The transformer block it belongs to; nil for embeddings, the final norm and the head.
        public let layer: Int?
        public var count: Int { shape.reduce(1, *) }
        /// Row counts of the stacked sections of a fused matrix (or its bias), top to bottom.
        public let sections: [Int]
        /// The routed expert it belongs to; nil for everything else.
        public var expert: Int? = nil
    }

    /// Every parameter, in buffer order: embeddings, each block (an MoE block: its router, then each
    /// routed expert's MLP, then the shared experts'), the final norm, then an untied head.
    public var parameters: [Parameter] {
        let c = dModel, kv = kvHeads * headSize, h = mlpHidden
        let qkv = [c, kv, kv]
        var list: [Parameter] = []
        func add(_ name: String, _ shape: [Int], _ role: ParameterRole, layer: Int? = nil, sections: [Int] = [], expert: Int? = nil) {
            list.append(Parameter(name: name, shape: shape, role: role, layer: layer, sections: sections, expert: expert))
        }
        /// An MLP of `width` hidden units; `expert` routed ones take the expert roles.
        func addMLP(_ p: String, width: Int, layer: Int, expert: Int? = nil) {
            let sections = gatedMLP ? [width, width] : [width], routed = expert != nil
            add(p + "fc.w", [sections.reduce(0, +), c], routed ? .expertInputWeight : .mlpInputWeight, layer: layer, sections: sections, expert: expert)
            if biases { add(p + "fc.b", [sections.reduce(0, +)], routed ? .expertInputBias : .mlpInputBias, layer: layer, sections: sections, expert: expert) }
            add(p + "proj.w", [c, width], routed ? .expertOutputWeight : .mlpOutputWeight, layer: layer, expert: expert)
            if biases { add(p + "proj.b", [c], routed ? .expertOutputBias : .mlpOutputBias, layer: layer, expert: expert) }
        }
        add("wte", [vocabulary, c], .tokenEmbedding)
        if learnedPositions { add("wpe", [context, c], .positionEmbedding) }
        for l in 0..<layers {
            let p = "h\(l)."
            add(p + "ln1.w", [c], .norm, layer: l)
            if biases { add(p + "ln1.b", [c], .norm, layer: l) }
            add(p + "attn.qkv.w", [qkv.reduce(0, +), c], .qkvWeight, layer: l, sections: qkv)
            if biases { add(p + "attn.qkv.b", [qkv.reduce(0, +)], .qkvBias, layer: l, sections: qkv) }
            add(p + "attn.proj.w", [c, c], .attentionOutputWeight, layer: l)
            if biases { add(p + "attn.proj.b", [c], .attentionOutputBias, layer: l) }
            add(p + "ln2.w", [c], .norm, layer: l)
            if biases { add(p + "ln2.b", [c], .norm, layer: l) }
            if let moe, isExpertLayer(l) {
                add(p + "moe.router.w", [moe.experts, c], .router, layer: l)
                for e in 0..<moe.experts { addMLP(p + "moe.e\(e).", width: moe.expertHidden, layer: l, expert: e) }
                for s in 0..<moe.sharedExperts { addMLP(p + "moe.shared\(s).", width: moe.expertHidden, layer: l) }
            } else {
                addMLP(p + "mlp.", width: h, layer: l)
            }
        }
        add("lnf.w", [c], .norm)
        if biases { add("lnf.b", [c], .norm) }
        if !tiedEmbeddings { add("head.w", [vocabulary, c], .outputHead) }
        return list
    }
}
