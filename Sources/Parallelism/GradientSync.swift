/// How one rank's gradients are summed over its data-parallel group: the elements it holds
/// (its tensor-parallel share of the stage's parameters), cut into buckets from the top of
/// the buffer down — the order the backward pass finishes them — each bucket started as soon
/// as the backward pass has finished its parameters. Without ZeRO each bucket is all-reduced;
/// under ZeRO reduce-scattered (each rank keeps and updates its block; ZeRO-1 and 2 then
/// all-gather the parameters, ZeRO-3 gathers each unit's weights when a pass uses them, so
/// its buckets never cross a unit's edge). Under expert parallelism a rank holds only its own
/// routed experts, whose gradients are summed over the ranks holding the same experts (the
/// expert-data group) in buckets of their own. The trainer moves exactly these buckets; the simulator prices them.
public struct GradientSync: Sendable {
    /// A run of consecutive parameters (entry indices of the shard plan) one rank of the stage holds.
    public struct Segment: Sendable, Hashable {
        public let entries: Range<Int>
        /// Elements of those parameters this rank holds, packed in buffer order.
        public let held: Int
        /// The group its gradients are summed over: `.data`, or `.expertData` for routed experts under expert parallelism.
        public let group: StepGroup
    }

    public struct Bucket: Sendable, Hashable {
        public let segment: Int
        /// Indices into the segment's packed held elements.
        public let held: Range<Int>
        /// The parameter holding its lowest element: once the backward pass has finished that
        /// parameter (and so everything above it), the bucket may start.
        public let firstEntry: Int
        /// It holds the tied embedding, whose two gradients (first and last stage) are summed
        /// first: it starts after that all-reduce.
        public let afterEmbedding: Bool
        /// The group it is summed over (its segment's).
        public let group: StepGroup
    }

    public let kind: CollectiveKind
    /// In buffer order.
    public let segments: [Segment]
    /// Top-down: the order they start in.
    public let buckets: [Bucket]
    let plan: ShardPlan
    let stage: Int
    /// Elements of each entry (buffer order) this rank holds: 0 for another stage's or another expert-parallel rank's.
    let held: [Int]

    /// The buckets of pipeline stage `stage`, at most `bucketElements` elements each, for the
    /// rank at position `expertRank` of its expert-parallel group.
    public init(plan: ShardPlan, stage: Int, bucketElements: Int, expertRank: Int = 0) {
        self.plan = plan
        self.stage = stage
        kind = plan.zero >= 1 ? .reduceScatter : .allReduce
        let held = plan.entries.map { $0.stages.contains(stage) ? plan.heldElements(of: $0, expertRank: expertRank) : 0 }
        self.held = held
        func group(_ index: Int) -> StepGroup {
            plan.layout.ep > 1 && plan.entries[index].parameter.expert != nil ? .expertData : .data
        }
        var segments: [Segment] = []
        var start: Int?
        for index in 0...plan.entries.count {
            let holds = index < plan.entries.count && held[index] > 0
            if let first = start, !holds || group(index) != group(first) {
                segments.append(Segment(entries: first..<index, held: held[first..<index].reduce(0, +), group: group(first)))
                start = nil
            }
            if holds, start == nil { start = index }
        }
        self.segments = segments
        let tied = plan.model.tiedEmbeddings && plan.layout.pp > 1
        var buckets: [Bucket] = []
        for (s, segment) in segments.enumerated().reversed() {
            // Packed index where each of the segment's parameters starts, to find a bucket's lowest.
            var starts: [Int] = [], seen = 0
            for index in segment.entries { starts.append(seen); seen += held[index] }
            func holder(_ element: Int) -> Int {   // the last parameter starting at or below `element`: the one holding it
                var low = 0, high = starts.count - 1
                while low < high {
                    let mid = (low + high + 1) / 2
                    if starts[mid] <= element { low = mid } else { high = mid - 1 }
                }
                return low
            }
            var top = segment.held
            while top > 0 {
                var bottom = max(0, top - max(1, bucketElements))
                if plan.zero >= 3 {
                    // ZeRO-3 gathers a unit's weights alone: no bucket crosses a unit's edge.
                    var first = holder(top - 1)
                    let unit = ParameterUnit(plan.entries[segment.entries.lowerBound + first].parameter)
                    while first > 0 && ParameterUnit(plan.entries[segment.entries.lowerBound + first - 1].parameter) == unit { first -= 1 }
                    bottom = max(bottom, starts[first])
                }
                let first = segment.entries.lowerBound + holder(bottom)
                let embedding = tied && plan.entries[first].parameter.role == .tokenEmbedding
                buckets.append(Bucket(segment: s, held: bottom..<top, firstEntry: first, afterEmbedding: embedding, group: segment.group))
                top = bottom
            }
        }
        self.buckets = buckets
    }

    /// The chunk of `stage` whose last backward pass finishes `bucket` (0 unless interleaved):
    /// its lowest parameter's layer's, the embeddings' on the first stage, the last chunk's otherwise.
    public func chunk(of bucket: Bucket) -> Int {
        let p = max(1, plan.layout.pp), parameter = plan.entries[bucket.firstEntry].parameter
        if let layer = parameter.layer, let k = plan.chunkLayers.firstIndex(where: { $0.contains(layer) }) { return k / p }
        let embedding = parameter.role == .tokenEmbedding || parameter.role == .positionEmbedding
        return embedding && stage == 0 ? 0 : plan.layout.chunksPerStage - 1
    }

    /// The parameters (entry indices) `bucket` holds elements of.
    public func entries(of bucket: Bucket) -> Range<Int> {
        var seen = 0, last = bucket.firstEntry
        for index in segments[bucket.segment].entries {
            if seen < bucket.held.upperBound { last = index }
            seen += held[index]
        }
        return bucket.firstEntry..<(last + 1)
    }

    /// Under ZeRO-3, the buckets (indices into `buckets`) holding the weights a pass through
    /// `unit` uses: the unit's own, and for the head of a tied model the token embedding's.
    public func buckets(for unit: ParameterUnit) -> [Int] {
        buckets.indices.filter { index in
            let entries = self.entries(of: buckets[index])
            return entries.contains { ParameterUnit(plan.entries[$0].parameter) == unit }
                || (unit == .head && plan.model.tiedEmbeddings && entries.contains { plan.entries[$0].parameter.role == .tokenEmbedding })
        }
    }

    /// Elements this rank sums over its data-parallel (and expert-data) group.
    public var heldElements: Int { segments.reduce(0) { $0 + $1.held } }

    /// Bucket `bucket`'s group under `layout` for the rank at data-parallel index `dataParallelRank`:
    /// its size and this rank's position in it (the dp group, or the ranks holding the same experts).
    public static func member(of bucket: Bucket, dataParallelRank dp: Int, layout: ParallelLayout) -> (rank: Int, size: Int) {
        bucket.group == .expertData ? (dp / layout.ep, layout.dp / layout.ep) : (dp, layout.dp)
    }

    /// The buffer ranges (flat offsets) holding packed elements `packed` of `segment` on
    /// tensor-parallel rank `tensorRank`, in buffer order, adjacent pieces joined.
    public func bufferRanges(segment: Int, packed: Range<Int>, tensorRank: Int) -> [Range<Int>] {
        var pieces: [Range<Int>] = [], seen = 0
        for index in segments[segment].entries where seen < packed.upperBound {
            let entry = plan.entries[index]
            guard seen + held[index] > packed.lowerBound else { seen += held[index]; continue }
            for range in plan.ranges(of: entry, tensorRank: tensorRank) {
                let low = max(packed.lowerBound, seen), high = min(packed.upperBound, seen + range.count)
                if low < high {
                    let overlap = low..<high
                    let from = plan.offsets[index] + range.lowerBound + overlap.lowerBound - seen
                    if let last = pieces.last, last.upperBound == from {
                        pieces[pieces.count - 1] = last.lowerBound..<(from + overlap.count)
                    } else {
                        pieces.append(from..<(from + overlap.count))
                    }
                }
                seen += range.count
            }
        }
        return pieces
    }
}
