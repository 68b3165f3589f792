import Tensor
import Workload

/// Where each named parameter of a GPT lives in one flat buffer, with how it is initialised.
///
/// One flat buffer keeps gradients, optimizer state, all-reduce buckets and checkpoints
/// simple: each is a buffer of the same length with the same offsets.
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
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
        let c = spec.dModel, h = spec.mlpHidden
        // GPT-2: residual projections scaled by 1/√(2·layers).
        let projectionStd = 0.02 / Float(2 * spec.layers).squareRoot()
        add("wte", [spec.vocabulary, c], std: 0.02)
        add("wpe", [spec.context, c], std: 0.01)
        for l in 0..<spec.layers {
            add("h\(l).ln1.w", [c], fill: 1)
            add("h\(l).ln1.b", [c], fill: 0)
            add("h\(l).attn.qkv.w", [3 * c, c], std: 0.02)
            add("h\(l).attn.qkv.b", [3 * c], fill: 0)
            add("h\(l).attn.proj.w", [c, c], std: projectionStd)
            add("h\(l).attn.proj.b", [c], fill: 0)
            add("h\(l).ln2.w", [c], fill: 1)
            add("h\(l).ln2.b", [c], fill: 0)
            add("h\(l).mlp.fc.w", [h, c], std: 0.02)
            add("h\(l).mlp.fc.b", [h], fill: 0)
            add("h\(l).mlp.proj.w", [c, h], std: projectionStd)
            add("h\(l).mlp.proj.b", [c], fill: 0)
        }
        add("lnf.w", [c], fill: 1)
        add("lnf.b", [c], fill: 0)
    }

    private mutating func add(_ name: String, _ shape: [Int], std: Float? = nil, fill: Float = 0) {
        let entry = Entry(name: name, shape: shape, offset: count, initStd: std, fill: fill, decay: shape.count == 2)
        index[name] = entries.count
        entries.append(entry)
        count += entry.count
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
