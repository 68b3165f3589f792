import Foundation

/// Training data read from storage every step (`data:` in a scenario): the batch's bytes come
/// from a node-local cache where they hit it and from the shared file system (`storage:`)
/// where they miss; the loader reads the next batch while the current step runs, so only the
/// part of the read longer than the step stalls it.
public struct InputPipeline: Sendable, Hashable {
    /// Bytes one token of training data takes on storage (tokenised text: 2–4 B), or one sample
    /// (images, video: the whole sample).
    public enum Size: Sendable, Hashable { case perToken(Double), perSample(Double) }
    public var size: Size
    /// Share of the bytes found in the node-local cache, and its read bandwidth per node.
    public var cacheHitRate = 0.0
    public var cacheBandwidth: Bandwidth?

    public init(size: Size) { self.size = size }

    /// Bytes of one global batch.
    public func batchBytes(_ s: Scenario) -> Double {
        switch size {
        case .perToken(let b): return b * Double(s.batch * s.sequence)
        case .perSample(let b): return b * Double(s.batch)
        }
    }

    /// Nodes that read: those holding the first pipeline stage (stages take contiguous blocks of
    /// nodes, so 1/pp of them; tensor-parallel ranks of a node share one read).
    public func readers(_ s: Scenario) -> Int { max(1, s.nodes / max(1, s.layout.pp)) }

    /// How long reading one global batch takes: misses from the shared file system (bounded by
    /// its aggregate bandwidth and each reader's share), hits from each node's cache, in parallel.
    public func readTime(_ s: Scenario) -> SimTime {
        let total = batchBytes(s), readers = Double(readers(s))
        let misses = total * (1 - cacheHitRate), hits = total * cacheHitRate
        var shared = 0.0
        if misses > 0, let storage = s.storage {
            shared = max(misses / storage.aggregate.bytesPerSecond, misses / readers / storage.perClient.bytesPerSecond) + storage.latency.seconds
        }
        let cached = hits > 0 ? hits / readers / (cacheBandwidth?.bytesPerSecond ?? .infinity) : 0
        return SimTime(seconds: max(shared, cached))
    }
}
