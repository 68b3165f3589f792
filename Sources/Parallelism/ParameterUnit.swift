import Workload

/// The weights one piece of a pass uses together, which ZeRO-3 gathers before the piece runs
/// and frees after it (FSDP's unit): the embeddings, one transformer layer, or the head (the
/// final norm, and the output projection or, tied, the token embedding).
public enum ParameterUnit: Sendable, Hashable, CustomStringConvertible {
    case embeddings
    case layer(Int)
    case head

    /// The unit a parameter belongs to (a tied embedding's to `.embeddings`; the head uses it too).
    public init(_ parameter: ModelSpec.Parameter) {
        if let layer = parameter.layer { self = .layer(layer); return }
        switch parameter.role {
        case .tokenEmbedding, .positionEmbedding: self = .embeddings
        default: self = .head
        }
    }

    /// The units a forward pass through `layers` uses, in order (with the embeddings when it
    /// embeds the tokens, the head when it ends in the loss); a backward pass uses them in
    /// reverse, without the embeddings (their gradient needs no weights).
    public static func forward(layers: Range<Int>, embed: Bool, head: Bool) -> [ParameterUnit] {
        (embed ? [.embeddings] : []) + layers.map { .layer($0) } + (head ? [.head] : [])
    }

    public static func backward(layers: Range<Int>, head: Bool) -> [ParameterUnit] {
        (head ? [.head] : []) + layers.reversed().map { .layer($0) }
    }

    public var description: String {
        switch self {
        case .embeddings: return "embeddings"
        case let .layer(l): return "layer \(l)"
        case .head: return "head"
        }
    }
}
