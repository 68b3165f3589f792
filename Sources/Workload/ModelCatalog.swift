/// Named model shapes: the two fleet trains for real, and real-world ones the simulator sizes.
public enum ModelCatalog {
    public static let gptTiny = ModelSpec(name: "gpt-tiny", vocabulary: 256, context: 128, layers: 4, heads: 4, kvHeads: 4,
                                          dModel: 128, mlpHidden: 512, gatedMLP: false, tiedEmbeddings: true,
                                          learnedPositions: true, biases: true)
    public static let gptSmall = ModelSpec(name: "gpt-small", vocabulary: 256, context: 256, layers: 6, heads: 6, kvHeads: 6,
                                           dModel: 384, mlpHidden: 1536, gatedMLP: false, tiedEmbeddings: true,
                                           learnedPositions: true, biases: true)
    /// GPT-3 175B (Brown et al. 2020, table 2.1).
    public static let gpt3_175B = ModelSpec(name: "gpt3-175b", vocabulary: 50_257, context: 2048, layers: 96, heads: 96, kvHeads: 96,
                                            dModel: 12_288, mlpHidden: 49_152, gatedMLP: false, tiedEmbeddings: true,
                                            learnedPositions: true, biases: true)
    /// Llama-3-class dense models (grouped-query attention, SwiGLU, RMSNorm, untied embeddings).
    public static let llama8B = ModelSpec(name: "llama-8b", vocabulary: 128_256, context: 8192, layers: 32, heads: 32, kvHeads: 8,
                                          dModel: 4096, mlpHidden: 14_336, gatedMLP: true, tiedEmbeddings: false,
                                          learnedPositions: false, biases: false)
    public static let llama70B = ModelSpec(name: "llama-70b", vocabulary: 128_256, context: 8192, layers: 80, heads: 64, kvHeads: 8,
                                           dModel: 8192, mlpHidden: 28_672, gatedMLP: true, tiedEmbeddings: false,
                                           learnedPositions: false, biases: false)
    public static let llama405B = ModelSpec(name: "llama-405b", vocabulary: 128_256, context: 8192, layers: 126, heads: 128, kvHeads: 8,
                                            dModel: 16_384, mlpHidden: 53_248, gatedMLP: true, tiedEmbeddings: false,
                                            learnedPositions: false, biases: false)

    public static let all: [ModelSpec] = [gptTiny, gptSmall, gpt3_175B, llama8B, llama70B, llama405B]

    /// Models the real trainer can run (GPT blocks: LayerNorm, GELU MLP, learned positions, tied embeddings).
    public static let trainable: [ModelSpec] = [gptTiny, gptSmall]

    public static func named(_ name: String) -> ModelSpec? { all.first { $0.name == name.lowercased() } }
}
