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

    public init(name: String, vocabulary: Int, context: Int, layers: Int, heads: Int, kvHeads: Int, dModel: Int,
                mlpHidden: Int, gatedMLP: Bool, tiedEmbeddings: Bool, learnedPositions: Bool, biases: Bool) {
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
    }

    public var headSize: Int { dModel / heads }

    /// Parameters of one transformer block.
    public var parametersPerLayer: Int {
        let c = dModel, kv = kvHeads * headSize
        let attention = c * (c + 2 * kv) + c * c + (biases ? c + 2 * kv + c : 0)
        let mlp = (gatedMLP ? 3 : 2) * c * mlpHidden + (biases ? mlpHidden + c : 0)
        let norms = biases ? 4 * c : 2 * c
        return attention + mlp + norms
    }

    /// All parameters (tied embeddings counted once).
    public var parameterCount: Int {
        let embeddings = vocabulary * dModel * (tiedEmbeddings ? 1 : 2) + (learnedPositions ? context * dModel : 0)
        return embeddings + layers * parametersPerLayer + (biases ? 2 * dModel : dModel)
    }

    /// Matmul FLOPs of one token's forward pass through one block at sequence length `seq`: 2
    /// per weight of its linear layers, plus attention scores and mixing (2·2·T·C, the whole
    /// T×T square as the trainer computes it).
    public func layerForwardFLOPsPerToken(sequence seq: Int) -> Double {
        let c = Double(dModel), kv = Double(kvHeads * headSize), h = Double(mlpHidden)
        let linear = c * (c + 2 * kv) + c * c + (gatedMLP ? 3 : 2) * c * h
        return 2 * linear + 2 * 2 * Double(seq) * c
    }

    /// Matmul FLOPs of one token through the output projection.
    public var headForwardFLOPsPerToken: Double { 2 * Double(dModel) * Double(vocabulary) }

    /// Matmul FLOPs of one token's forward pass at full context: every block and the head.
    public var forwardFLOPsPerToken: Double {
        Double(layers) * layerForwardFLOPsPerToken(sequence: context) + headForwardFLOPsPerToken
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
