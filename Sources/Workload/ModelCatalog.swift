/// Named model shapes: the two fleet trains for real, and real-world ones the simulator sizes.
public enum ModelCatalog {
    public static let gptTiny = ModelSpec(name: "gpt-tiny", vocabulary: 256, context: 128, layers: 4, heads: 4, kvHeads: 4,
                                          dModel: 128, mlpHidden: 512, gatedMLP: false, tiedEmbeddings: true,
                                          learnedPositions: true, biases: true)
    public static let gptSmall = ModelSpec(name: "gpt-small", vocabulary: 256, context: 256, layers: 6, heads: 6, kvHeads: 6,
                                           dModel: 384, mlpHidden: 1536, gatedMLP: false, tiedEmbeddings: true,
                                           learnedPositions: true, biases: true)
    /// gpt-tiny with 8 experts of half the MLP width in every other block (1 and 3), top-2
    /// routing: the same FLOPs a token as gpt-tiny, twice its parameters.
    public static let gptTinyMoE = ModelSpec(name: "gpt-tiny-moe", vocabulary: 256, context: 128, layers: 4, heads: 4, kvHeads: 4,
                                             dModel: 128, mlpHidden: 512, gatedMLP: false, tiedEmbeddings: true,
                                             learnedPositions: true, biases: true,
                                             moe: MixtureOfExperts(experts: 8, topK: 2, expertHidden: 256, interval: 2))
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

    /// Mixtral 8x7B (Jiang et al. 2024): 8 experts, top-2, in every block; 46.7 B parameters, 12.9 B active.
    public static let mixtral8x7B = ModelSpec(name: "mixtral-8x7b", vocabulary: 32_000, context: 32_768, layers: 32, heads: 32, kvHeads: 8,
                                              dModel: 4096, mlpHidden: 14_336, gatedMLP: true, tiedEmbeddings: false,
                                              learnedPositions: false, biases: false,
                                              moe: MixtureOfExperts(experts: 8, topK: 2, expertHidden: 14_336))
    /// DeepSeek-V3's shape (DeepSeek-AI 2024): 256 routed experts (top-8) and one shared expert of
    /// width 2048 in every block after three dense ones. Its multi-head latent attention is sized
    /// as multi-head attention of the same width: 672 B parameters, 38.7 B active (the paper: 671 B, 37 B).
    public static let deepseekV3Like = ModelSpec(name: "deepseek-v3-like", vocabulary: 129_280, context: 4096, layers: 61, heads: 128,
                                                 kvHeads: 128, dModel: 7168, mlpHidden: 18_432, gatedMLP: true, tiedEmbeddings: false,
                                                 learnedPositions: false, biases: false,
                                                 moe: MixtureOfExperts(experts: 256, topK: 8, expertHidden: 2048, sharedExperts: 1, firstDense: 3))

    public static let all: [ModelSpec] = [gptTiny, gptSmall, gptTinyMoE, gpt3_175B, llama8B, llama70B, llama405B, mixtral8x7B, deepseekV3Like]

    /// Models the real trainer can run (GPT blocks: LayerNorm, GELU MLP or experts, learned positions, tied embeddings).
    public static let trainable: [ModelSpec] = [gptTiny, gptSmall, gptTinyMoE]

    public static func named(_ name: String) -> ModelSpec? { all.first { $0.name == name.lowercased() } }
}
