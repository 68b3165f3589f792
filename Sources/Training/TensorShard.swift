import Collectives
import Parallelism
import Workload

/// This rank's slice of Megatron-style tensor parallelism (Shoeybi et al. 2019): attention
/// heads and MLP columns split `size` ways; LayerNorms, embeddings and the tied output
/// projection replicated. `reduce` is the all-reduce over the tensor-parallel group that
/// the conjugate f (backward) and g (forward) operators perform; under sequence parallelism
/// (Korthikanti et al. 2022) they become `gatherSequence` and `scatterSequence`.
public final class TensorShard {
    public let size: Int
    public let index: Int
    let group: Communicator?
    /// Sequence parallelism: outside the split products this shard holds positions
    /// `positions(of:)` of every sequence.
    public let sequenceParallel: Bool
    /// Collectives issued (all-reduces; under sequence parallelism also all-gathers and
    /// reduce-scatters) and the floats handed to them, as the plan counts them (an all-gather
    /// its own block, the others their whole buffer).
    public private(set) var allReduces = 0
    public private(set) var reducedFloats = 0
    /// Time spent in those collectives (communication inside the forward and backward passes).
    public private(set) var reduceTime: Duration = .zero
    /// Staging of the sequence-parallel collectives, shard-major.
    private let staging = ScratchPool()

    /// The whole model on one rank.
    public static var whole: TensorShard { TensorShard(size: 1, index: 0, group: nil) }

    public init(size: Int, index: Int, group: Communicator?, sequenceParallel: Bool = false) {
        precondition(size == 1 || group?.size == size, "a tensor-parallel shard needs its group")
        self.size = size
        self.index = index
        self.group = group
        self.sequenceParallel = sequenceParallel && size > 1
    }

    /// Positions of a `sequence`-token sequence this shard holds outside the split products
    /// (all of them without sequence parallelism).
    public func positions(of sequence: Int) -> Range<Int> {
        guard sequenceParallel else { return 0..<sequence }
        let n = sequence / size
        return (index * n)..<((index + 1) * n)
    }

    /// Rows this shard holds of `batch` sequences of `sequence` tokens outside the split products.
    func localRows(batch: Int, sequence: Int) -> Int { batch * positions(of: sequence).count }

    /// Times and counts one collective of `floats`.
    private func counted(_ floats: Int, _ body: () throws -> Void) rethrows {
        allReduces += 1
        reducedFloats += floats
        let start = ContinuousClock.now
        try body()
        reduceTime += ContinuousClock.now - start
    }

    /// Copies between the shard-major order of the collectives (`[shard][sample][position][width]`)
    /// and whole sequences (`[sample][position][width]`).
    private func permute(_ from: UnsafePointer<Float>, _ to: UnsafeMutablePointer<Float>, batch: Int, sequence: Int, width: Int,
                         toShardMajor: Bool) {
        let n = sequence / size, run = n * width
        for shard in 0..<size {
            for b in 0..<batch {
                let major = (shard * batch + b) * run, whole = (b * sequence + shard * n) * width
                (to + (toShardMajor ? major : whole)).update(from: from + (toShardMajor ? whole : major), count: run)
            }
        }
    }

    /// Every shard's positions (`local`: `batch` × its positions × `width`) into whole sequences
    /// in `full`: the all-gather of sequence parallelism (g in the forward pass, f̄ in the backward).
    func gatherSequence(_ local: UnsafePointer<Float>, into full: UnsafeMutablePointer<Float>, batch: Int, sequence: Int, width: Int) throws {
        guard let group, sequenceParallel else { return full.update(from: local, count: batch * sequence * width) }
        let block = batch * (sequence / size) * width, stage = staging.floats(0, block * size)
        (stage + index * block).update(from: local, count: block)
        try counted(block) { try group.allGather(inPlace: UnsafeMutableBufferPointer(start: stage, count: block * size)) }
        permute(stage, full, batch: batch, sequence: sequence, width: width, toShardMajor: false)
    }

    /// Sums `full` (whole sequences, this shard's partial) over the group and leaves this shard's
    /// positions of the sum in `local`: the reduce-scatter of sequence parallelism (ḡ). With
    /// `tree`, in that tree's order (deterministic mode, each shard holding its node's partial).
    func scatterSequence(_ full: UnsafePointer<Float>, into local: UnsafeMutablePointer<Float>, batch: Int, sequence: Int, width: Int,
                         tree: ReductionTree? = nil) throws {
        guard let group, sequenceParallel else { return local.update(from: full, count: batch * sequence * width) }
        let block = batch * (sequence / size) * width, stage = staging.floats(0, block * size)
        permute(full, stage, batch: batch, sequence: sequence, width: width, toShardMajor: true)
        let buffer = UnsafeMutableBufferPointer(start: stage, count: block * size)
        var mine = 0..<0
        try counted(block * size) {
            mine = try tree.map { try group.orderedReduceScatter(buffer, tree: $0) } ?? group.reduceScatter(buffer)
        }
        local.update(from: stage + mine.lowerBound, count: block)
    }

    /// This shard's positions of `full` (whole sequences) into `local`: what a replicated value
    /// hands to the sequence-parallel region (no communication).
    func takeSequence(_ full: UnsafePointer<Float>, into local: UnsafeMutablePointer<Float>, batch: Int, sequence: Int, width: Int) {
        let mine = positions(of: sequence), run = mine.count * width
        for b in 0..<batch { (local + b * run).update(from: full + (b * sequence + mine.lowerBound) * width, count: run) }
    }

    /// Sums `count` floats over the tensor-parallel group (nothing to do for one shard).
    func reduce(_ pointer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let group, size > 1 else { return }
        try counted(count) { try group.allReduce(UnsafeMutableBufferPointer(start: pointer, count: count)) }
    }

    /// Sums over the group in `tree`'s order (deterministic mode): this shard holds the partial
    /// sum of its node, and every shard ends with the single-process bits.
    func orderedReduce(_ pointer: UnsafeMutablePointer<Float>, count: Int, tree: ReductionTree) throws {
        guard let group, size > 1 else { return }
        try counted(count) { try group.orderedAllReduce(UnsafeMutableBufferPointer(start: pointer, count: count), tree: tree) }
    }

    /// Local sizes of a model under this split.
    struct Dimensions {
        let channels: Int, heads: Int, hidden: Int
    }

    func dimensions(_ spec: ModelSpec) -> Dimensions {
        Dimensions(channels: spec.dModel / size, heads: spec.heads / size, hidden: spec.mlpHidden / size)
    }

    /// The flat ranges of `entry` that shard `index` of `size` holds (`ShardPlan` decides the split).
    static func ownedRanges(of entry: ParameterLayout.Entry, size: Int, index: Int) -> [Range<Int>] {
        ShardPlan.ranges(of: entry.parameter, tensorParallel: size, rank: index).map { ($0.lowerBound + entry.offset)..<($0.upperBound + entry.offset) }
    }

    /// Whether `entry` is split across a group of `size` (otherwise every shard holds the same copy).
    static func isSplit(_ entry: ParameterLayout.Entry, size: Int) -> Bool {
        size > 1 && ShardPlan.split(of: entry.parameter.role) != .replicated
    }
}
