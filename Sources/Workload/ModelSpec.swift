/// The shape of a decoder-only transformer, as plain data shared by the trainer and the simulator.
public struct ModelSpec: Sendable, Hashable, Codable {
    public var name: String
    public var vocabulary: Int
    public var context: Int
    public var layers: Int
    public var heads: Int
    /// Key/value heads (grouped-query attention); equal to `heads` for classic multi-head attention.
    public var kvHeads: Int
    public var dModel: Int
    public var mlpHidden: Int
    /// SwiGLU-style MLP with three matrices (Llama) instead of two (GPT).
    public var gatedMLP: Bool
    /// Output projection shares the token embedding.
    public var tiedEmbeddings: Bool
    /// Learned absolute positions (GPT) rather than rotary ones (no parameters).
    public var learnedPositions: Bool
    /// Bias vectors in linear layers and LayerNorm (GPT) or none (Llama, RMSNorm).
    public var biases: Bool
    /// Experts in place of some blocks' MLPs (nil: a dense model).
    public var moe: MixtureOfExperts?

    public init(name: String, vocabulary: Int, context: Int, layers: Int, heads: Int, kvHeads: Int, dModel: Int,
                mlpHidden: Int, gatedMLP: Bool, tiedEmbeddings: Bool, learnedPositions: Bool, biases: Bool,
                moe: MixtureOfExperts? = nil) {
        self.name = name
        self.vocabulary = vocabulary
        self.context = context
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.dModel = dModel
        self.mlpHidden = mlpHidden
        self.gatedMLP = gatedMLP
        self.tiedEmbeddings = tiedEmbeddings
        self.learnedPositions = learnedPositions
        self.biases = biases
        self.moe = moe
    }

    public var headSize: Int { dModel / heads }

    /// Parameters of one dense transformer block.
    public var parametersPerLayer: Int { attentionAndNormParameters + (gatedMLP ? 3 : 2) * dModel * mlpHidden + (biases ? (gatedMLP ? 2 : 1) * mlpHidden + dModel : 0) }

    private var attentionAndNormParameters: Int {
        let c = dModel, kv = kvHeads * headSize
        return c * (c + 2 * kv) + c * c + (biases ? c + 2 * kv + c : 0) + (biases ? 4 * c : 2 * c)
    }

    /// Parameters of block `layer`; with `activeOnly`, an MoE block counts only the experts one token reaches.
    public func parameters(layer: Int, activeOnly: Bool = false) -> Int {
        guard let moe, isExpertLayer(layer) else { return parametersPerLayer }
        let experts = (activeOnly ? moe.topK : moe.experts) + moe.sharedExperts
        return attentionAndNormParameters + dModel * moe.experts + experts * parametersPerExpert
    }

    private var embeddingAndFinalParameters: Int {
        vocabulary * dModel * (tiedEmbeddings ? 1 : 2) + (learnedPositions ? context * dModel : 0) + (biases ? 2 * dModel : dModel)
    }

    /// All parameters (tied embeddings counted once).
    public var parameterCount: Int { embeddingAndFinalParameters + (0..<layers).reduce(0) { $0 + parameters(layer: $1) } }

    /// Parameters one token's forward pass uses (every parameter of a dense model).
    public var activeParameterCount: Int {
        embeddingAndFinalParameters + (0..<layers).reduce(0) { $0 + parameters(layer: $1, activeOnly: true) }
    }

    /// Matmul FLOPs of one token's forward pass through one dense block at sequence length `seq`:
    /// 2 per weight of its linear layers, plus attention scores and mixing (2·2·T·C, the whole
    /// T×T square as the trainer computes it).
    public func layerForwardFLOPsPerToken(sequence seq: Int) -> Double {
        let c = Double(dModel), h = Double(mlpHidden)
        return attentionForwardFLOPsPerToken(sequence: seq) + 2 * (gatedMLP ? 3 : 2) * c * h
    }

    /// The same for block `layer`: an MoE block counts its router and the experts one token reaches.
    public func layerForwardFLOPsPerToken(_ layer: Int, sequence seq: Int) -> Double {
        guard isExpertLayer(layer) else { return layerForwardFLOPsPerToken(sequence: seq) }
        return attentionForwardFLOPsPerToken(sequence: seq) + expertForwardFLOPsPerToken
    }

    private func attentionForwardFLOPsPerToken(sequence seq: Int) -> Double {
        let c = Double(dModel), kv = Double(kvHeads * headSize)
        return 2 * (c * (c + 2 * kv) + c * c) + 2 * 2 * Double(seq) * c
    }

    /// Matmul FLOPs of one token through the output projection.
    public var headForwardFLOPsPerToken: Double { 2 * Double(dModel) * Double(vocabulary) }

    /// Matmul FLOPs of one token's forward pass at full context: every block and the head.
    public var forwardFLOPsPerToken: Double {
        (0..<layers).reduce(0) { $0 + layerForwardFLOPsPerToken($1, sequence: context) } + headForwardFLOPsPerToken
    }

    /// Forward + backward: three times the forward matmul work.
    public var trainingFLOPsPerToken: Double { 3 * forwardFLOPsPerToken }

    /// Forward FLOPs of one token at sequence length `seq` (attention scales with it).
    public func trainingFLOPsPerToken(sequence seq: Int) -> Double {
        var spec = self
        spec.context = seq
        return spec.trainingFLOPsPerToken
    }
}
