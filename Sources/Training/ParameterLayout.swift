import Tensor
import Workload

/// Where each named parameter of a GPT lives in one flat buffer, with how it is initialised.
///
/// One flat buffer keeps gradients, optimizer state, all-reduce buckets and checkpoints
/// simple: each is a buffer of the same length with the same offsets.
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable {
        /// Name, shape and role, from the model's one parameter list (`ModelSpec.parameters`).
        public let parameter: ModelSpec.Parameter
        public var name: String { parameter.name }
        public var shape: [Int] { parameter.shape }
        public let offset: Int
        public var count: Int { parameter.count }
        /// Standard deviation of the normal initialisation; nil means constant `fill`.
        public let initStd: Float?
        public let fill: Float
        /// Weight decay applies to matrices, not to biases and LayerNorm parameters.
        public let decay: Bool
    }

    public let spec: ModelSpec
    public private(set) var entries: [Entry] = []
    public private(set) var count = 0
    private var index: [String: Int] = [:]

    public init(spec: ModelSpec) {
        self.spec = spec
        // GPT-2: embeddings N(0, 0.02) (positions 0.01), residual projections scaled by
        // 1/√(2·layers), LayerNorm weights 1, biases 0.
        let projectionStd = 0.02 / Float(2 * spec.layers).squareRoot()
        for p in spec.parameters {
            let std: Float?, fill: Float
            switch p.role {
            case .tokenEmbedding, .qkvWeight, .mlpInputWeight, .outputHead, .router, .expertInputWeight: (std, fill) = (0.02, 0)
            case .positionEmbedding: (std, fill) = (0.01, 0)
            case .attentionOutputWeight, .mlpOutputWeight, .expertOutputWeight: (std, fill) = (projectionStd, 0)
            case .norm: (std, fill) = (nil, p.name.hasSuffix(".w") ? 1 : 0)
            case .qkvBias, .attentionOutputBias, .mlpInputBias, .mlpOutputBias, .expertInputBias, .expertOutputBias: (std, fill) = (nil, 0)
            }
            let entry = Entry(parameter: p, offset: count, initStd: std, fill: fill, decay: p.shape.count == 2)
            index[p.name] = entries.count
            entries.append(entry)
            count += entry.count
        }
    }

    public func entry(_ name: String) -> Entry {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return entries[i]
    }

    /// The parameter that flat offset `offset` belongs to (entries are sorted by offset).
    public func entry(containing offset: Int) -> Entry {
        precondition((0..<count).contains(offset), "offset \(offset) is outside the \(count) parameters")
        var low = 0, high = entries.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if entries[mid].offset <= offset { low = mid } else { high = mid - 1 }
        }
        return entries[low]
    }

    /// `range` of the flat buffer cut at parameter boundaries, in order: each piece with its parameter.
    public func split(_ range: Range<Int>) -> [(entry: Entry, part: Range<Int>)] {
        var pieces: [(Entry, Range<Int>)] = [], start = range.lowerBound
        while start < range.upperBound {
            let entry = entry(containing: start)
            let end = min(range.upperBound, entry.offset + entry.count)
            pieces.append((entry, start..<end))
            start = end
        }
        return pieces
    }

    /// Fills `buffer` with the initial values for `seed`: element i of parameter p is drawn
    /// from the stream keyed by (p's name, i), independent of any sharding.
    public func initialize(_ buffer: FloatBuffer, seed: UInt64) {
        precondition(buffer.count == count)
        let rng = CounterRNG(seed: seed)
        for entry in entries {
            let base = buffer.pointer + entry.offset
            if let std = entry.initStd {
                let stream = CounterRNG.stream(entry.name)
                for i in 0..<entry.count { base[i] = std * rng.normal(stream: stream, index: UInt64(i)) }
            } else {
                base.update(repeating: entry.fill, count: entry.count)
            }
        }
    }
}
