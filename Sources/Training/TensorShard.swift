import Collectives
import Parallelism
import Workload

/// This rank's slice of Megatron-style tensor parallelism (Shoeybi et al. 2019): attention
/// heads and MLP columns split `size` ways; LayerNorms, embeddings and the tied output
/// projection replicated. `reduce` is the all-reduce over the tensor-parallel group that
/// the conjugate f (backward) and g (forward) operators perform.
public final class TensorShard {
    public let size: Int
    public let index: Int
    let group: Communicator?
    /// All-reduces issued and floats reduced by this shard (for tests and reports).
    public private(set) var allReduces = 0
    public private(set) var reducedFloats = 0
    /// Time spent in those all-reduces (communication inside the forward and backward passes).
    public private(set) var reduceTime: Duration = .zero

    /// The whole model on one rank.
    public static var whole: TensorShard { TensorShard(size: 1, index: 0, group: nil) }

    public init(size: Int, index: Int, group: Communicator?) {
        precondition(size == 1 || group?.size == size, "a tensor-parallel shard needs its group")
        self.size = size
        self.index = index
        self.group = group
    }

    /// Sums `count` floats over the tensor-parallel group (nothing to do for one shard).
    func reduce(_ pointer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let group, size > 1 else { return }
        allReduces += 1
        reducedFloats += count
        let start = ContinuousClock.now
        try group.allReduce(UnsafeMutableBufferPointer(start: pointer, count: count))
        reduceTime += ContinuousClock.now - start
    }

    /// Sums over the group in `tree`'s order (deterministic mode): this shard holds the partial
    /// sum of its node, and every shard ends with the single-process bits.
    func orderedReduce(_ pointer: UnsafeMutablePointer<Float>, count: Int, tree: ReductionTree) throws {
        guard let group, size > 1 else { return }
        allReduces += 1
        reducedFloats += count
        let start = ContinuousClock.now
        try group.orderedAllReduce(UnsafeMutableBufferPointer(start: pointer, count: count), tree: tree)
        reduceTime += ContinuousClock.now - start
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
