import Collectives
import Parallelism
import Tensor

/// The data-parallel gradient sum of the step plan (`GradientSync`): buckets of the elements
/// this rank holds, from the top of the buffer down, each started as soon as the backward pass
/// has finished its parameters. All-reduces run in the background and overlap the rest of the
/// backward pass; ZeRO's reduce-scatters run where they start and leave this rank its block.
///
/// A bucket whose elements are one contiguous run of the buffer (always, without tensor
/// parallelism) is summed in place; a tensor-parallel shard's scattered pieces are packed into
/// a bucket of their own first and unpacked when the sum is done.
final class GradientBuckets {
    struct Bucket {
        /// The buffer ranges it holds, in buffer order.
        let pieces: [Range<Int>]
        let count: Int
        /// Its lowest element's parameter starts here: it may start once the backward pass has
        /// finished everything at or above this offset.
        let startOffset: Int
        let afterEmbedding: Bool
        /// Packed copy of scattered pieces (nil when `pieces` is one run).
        let staging: FloatBuffer?
        /// Under ZeRO: this rank's block of the bucket (packed indices) and its buffer ranges.
        let block: Range<Int>
        let blockPieces: [Range<Int>]
        /// The buffer ranges of the bucket outside this rank's block: what ZeRO-2 and 3 let go.
        let others: [Range<Int>]
        /// Who it is summed over: the data-parallel group, or (a routed expert's, under expert
        /// parallelism) the ranks holding the same experts. A group of one moves nothing.
        let group: Communicator
    }

    let buckets: [Bucket]
    let kind: CollectiveKind
    private let gradients: UnsafeMutablePointer<Float>
    private var started = 0
    private var active: [(CollectiveOperation, Int)] = []
    /// How the all-reduce buckets run: a ring over the group, or hierarchical (each host's
    /// ranks first, then the ring across hosts).
    var algorithm = AllReduceAlgorithm.ring
    private(set) var floats = 0
    private var collectives = 0
    /// ZeRO-2 and 3: the gradient buffer whose elements outside this rank's block are released
    /// as soon as a bucket's reduce-scatter is done.
    var releasing: FloatBuffer?

    /// `groups` gives the communicator of each bucket's group (`.data`, `.expertData`).
    init(program: StepProgram, groups: (StepGroup) -> Communicator, gradients: UnsafeMutablePointer<Float>) {
        let sync = program.sync, tp = program.coordinates.tp
        kind = sync.kind
        buckets = sync.buckets.map { bucket in
            let group = groups(bucket.group)
            let pieces = sync.bufferRanges(segment: bucket.segment, packed: bucket.held, tensorRank: tp)
            let block = BlockPartition(count: bucket.held.count, parts: group.size).range(group.rank)
            let blockPieces = sync.bufferRanges(segment: bucket.segment,
                                                packed: (bucket.held.lowerBound + block.lowerBound)..<(bucket.held.lowerBound + block.upperBound),
                                                tensorRank: tp)
            return Bucket(pieces: pieces, count: bucket.held.count, startOffset: program.plan.offsets[bucket.firstEntry],
                          afterEmbedding: bucket.afterEmbedding, staging: pieces.count > 1 ? FloatBuffer(count: bucket.held.count) : nil,
                          block: block, blockPieces: blockPieces, others: Self.subtract(blockPieces, from: pieces), group: group)
        }
        self.gradients = gradients
    }

    /// This rank's blocks under ZeRO, in buffer order: the elements whose update it owns.
    var blocks: [Range<Int>] { buckets.flatMap(\.blockPieces).sorted { $0.lowerBound < $1.lowerBound } }

    /// The bucket's elements of `buffer` as one run: in place, or packed into its staging copy.
    private func packed(_ bucket: Bucket, of buffer: UnsafeMutablePointer<Float>) -> UnsafeMutableBufferPointer<Float> {
        guard let staging = bucket.staging else {
            return UnsafeMutableBufferPointer(start: buffer + bucket.pieces[0].lowerBound, count: bucket.count)
        }
        var at = 0
        for piece in bucket.pieces {
            (staging.pointer + at).update(from: buffer + piece.lowerBound, count: piece.count)
            at += piece.count
        }
        return staging.buffer
    }

    private func unpack(_ bucket: Bucket, into buffer: UnsafeMutablePointer<Float>) {
        guard let staging = bucket.staging else { return }
        var at = 0
        for piece in bucket.pieces {
            (buffer + piece.lowerBound).update(from: staging.pointer + at, count: piece.count)
            at += piece.count
        }
    }

    /// Starts every bucket lying wholly at or above `offset` (those after the tied embedding's
    /// sum wait for `finish`), then advances those in flight.
    func finalized(from offset: Int) throws {
        while started < buckets.count && buckets[started].startOffset >= offset && !buckets[started].afterEmbedding {
            try start(started)
        }
        for (operation, _) in active { _ = try operation.advance() }
    }

    private func start(_ index: Int) throws {
        let bucket = buckets[index], group = bucket.group
        started += 1
        guard group.size > 1 else { return }
        let data = packed(bucket, of: gradients)
        switch kind {
        case .reduceScatter:
            let mine = try group.reduceScatter(data)
            precondition(mine == bucket.block, "a reduce-scatter leaves this rank the block the plan gives it")
            unpack(bucket, into: gradients)
            releasing?.release(bucket.others)
        default:
            active.append((algorithm == .hierarchical ? try group.startHierarchicalAllReduce(data) : try group.startAllReduce(data), index))
        }
        floats += bucket.count
        collectives += 1
    }

    /// Starts what is left and waits for all; returns the collectives and floats of the step.
    func finish() throws -> (collectives: Int, floats: Int) {
        while started < buckets.count { try start(started) }
        for (operation, index) in active {
            try operation.finish()
            unpack(buckets[index], into: gradients)
        }
        active.removeAll()
        defer { started = 0; floats = 0; collectives = 0 }
        return (collectives, floats)
    }

    /// ZeRO-1 and 2: all-gathers every bucket's updated `parameters` from the ranks that own each block.
    func allGather(_ parameters: UnsafeMutablePointer<Float>) throws {
        for index in buckets.indices { try finishGather(index, try startGather(index, into: parameters), into: parameters) }
    }

    /// Starts the all-gather of bucket `index` of `parameters` (this rank's block in place);
    /// `finishGather` completes it. A bucket's staging copy is its own until then.
    func startGather(_ index: Int, into parameters: UnsafeMutablePointer<Float>) throws -> CollectiveOperation {
        try buckets[index].group.startAllGather(inPlace: packed(buckets[index], of: parameters))
    }

    func finishGather(_ index: Int, _ operation: CollectiveOperation, into parameters: UnsafeMutablePointer<Float>) throws {
        try operation.finish()
        unpack(buckets[index], into: parameters)
    }

    /// `ranges` less `removed` (both sorted and disjoint, `removed` lying within `ranges`).
    static func subtract(_ removed: [Range<Int>], from ranges: [Range<Int>]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        for range in ranges {
            var low = range.lowerBound
            for cut in removed where cut.overlaps(range) {
                if cut.lowerBound > low { result.append(low..<cut.lowerBound) }
                low = max(low, cut.upperBound)
            }
            if low < range.upperBound { result.append(low..<range.upperBound) }
        }
        return result
    }
}
