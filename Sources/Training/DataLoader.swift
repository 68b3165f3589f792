import Tensor

/// Serves batches of (input, next-token target) windows from a byte corpus.
///
/// Training windows are drawn at random positions keyed by the global sample index
/// (step × batch + sample), so any split of a batch across ranks sees the same samples;
/// validation windows are a fixed, evenly spaced set from the held-out tail.
public struct DataLoader: Sendable {
    public let sequence: Int
    public let train: ArraySlice<UInt8>
    public let validation: ArraySlice<UInt8>
    private let rng: CounterRNG
    private static let stream = CounterRNG.stream("data.train")

    /// Splits off the last `validationFraction` of the corpus for validation.
    public init(corpus: Corpus, sequence: Int, seed: UInt64, validationFraction: Double = 0.1) throws {
        let needed = 2 * (sequence + 1)
        let split = corpus.bytes.count - Int(Double(corpus.bytes.count) * validationFraction)
        guard corpus.bytes.count >= needed, split > sequence, corpus.bytes.count - split > sequence else {
            throw Corpus.LoadError.tooShort(path: corpus.name, bytes: corpus.bytes.count,
                                            needed: max(needed, Int(Double(sequence + 1) / validationFraction) + 1))
        }
        self.sequence = sequence
        train = corpus.bytes[0..<split]
        validation = corpus.bytes[split...]
        rng = CounterRNG(seed: seed)
    }

    /// Samples `range` of the global batch at `step` (`batch` samples in all): tokens and targets, row-major.
    public func trainingBatch(step: Int, batch: Int, samples range: Range<Int>? = nil) -> (tokens: [Int32], targets: [Int32]) {
        let samples = range ?? 0..<batch
        var tokens: [Int32] = [], targets: [Int32] = []
        tokens.reserveCapacity(samples.count * sequence)
        targets.reserveCapacity(samples.count * sequence)
        let span = train.count - sequence - 1
        for s in samples {
            let index = UInt64(step) &* UInt64(batch) &+ UInt64(s)
            let start = train.startIndex + Int(rng.bits(stream: Self.stream, index: index) % UInt64(span + 1))
            append(train, from: start, to: &tokens, &targets)
        }
        return (tokens, targets)
    }

    /// Validation batch `index` of `count` windows spread evenly over the held-out data.
    public func validationBatch(_ index: Int, of count: Int, batch: Int) -> (tokens: [Int32], targets: [Int32]) {
        var tokens: [Int32] = [], targets: [Int32] = []
        let span = validation.count - sequence - 1
        let windows = count * batch
        for s in 0..<batch {
            let w = index * batch + s
            let start = validation.startIndex + (windows > 1 ? span * w / (windows - 1) : 0)
            append(validation, from: start, to: &tokens, &targets)
        }
        return (tokens, targets)
    }

    private func append(_ source: ArraySlice<UInt8>, from start: Int, to tokens: inout [Int32], _ targets: inout [Int32]) {
        for i in 0..<sequence {
            tokens.append(Int32(source[start + i]))
            targets.append(Int32(source[start + i + 1]))
        }
    }
}
