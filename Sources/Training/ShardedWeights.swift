import Collectives
import Parallelism
import Tensor

/// Where a pass's weights come from: GPT asks before a unit's weights are used and says when
/// it is done with them. Without it every weight is always there.
protocol WeightSource: AnyObject {
    /// `unit`'s weights must be in place on return; `next` is the unit the pass uses after it.
    func use(_ unit: ParameterUnit, then next: ParameterUnit?) throws
    func done(_ unit: ParameterUnit)
}

/// ZeRO-3 (FSDP's full sharding): between uses a rank holds only its block of each bucket of
/// the weights. Before a pass uses a unit the unit's buckets are all-gathered into the flat
/// buffer, the next unit's gather is started at once (prefetched one unit ahead, so it travels
/// while this unit computes), and when the pass is done with the unit everything outside this
/// rank's blocks is released again.
final class ShardedWeights: WeightSource {
    private let buckets: GradientBuckets
    private let parameters: FloatBuffer
    private let unitBuckets: [ParameterUnit: [Int]]
    /// Gathers started ahead of their use.
    private var prefetched: [ParameterUnit: [(Int, CollectiveOperation)]] = [:]
    /// Weights gathered per step (a rank's blocks included), for the step's traffic.
    private(set) var gatheredFloats = 0
    private(set) var gathers = 0
    /// Time spent waiting for gathers to complete: inside the passes, yet not compute (a slow
    /// peer's lateness lands here, not in this rank's compute).
    private(set) var waited: Duration = .zero

    init(buckets: GradientBuckets, sync: GradientSync, parameters: FloatBuffer, units: [ParameterUnit]) {
        self.buckets = buckets
        self.parameters = parameters
        unitBuckets = Dictionary(uniqueKeysWithValues: units.map { ($0, sync.buckets(for: $0)) })
    }

    func use(_ unit: ParameterUnit, then next: ParameterUnit?) throws {
        let began = ContinuousClock.now
        defer { waited += ContinuousClock.now - began }
        let pending = try prefetched.removeValue(forKey: unit) ?? start(unit)
        for (index, operation) in pending { try buckets.finishGather(index, operation, into: parameters.pointer) }
        if let next, next != unit, prefetched[next] == nil { prefetched[next] = try start(next) }
    }

    func done(_ unit: ParameterUnit) {
        for index in unitBuckets[unit] ?? [] { parameters.release(buckets.buckets[index].others) }
    }

    private func start(_ unit: ParameterUnit) throws -> [(Int, CollectiveOperation)] {
        try (unitBuckets[unit] ?? []).map { index in
            gathers += 1
            gatheredFloats += buckets.buckets[index].count
            return (index, try buckets.startGather(index, into: parameters.pointer))
        }
    }

    /// Every bucket's weights in place (a checkpoint's or a checksum's view of the whole stage).
    func gatherAll() throws {
        precondition(prefetched.isEmpty, "whole-stage gathers happen between passes")
        for index in buckets.buckets.indices {
            try buckets.finishGather(index, try buckets.startGather(index, into: parameters.pointer), into: parameters.pointer)
        }
    }

    /// Lets go of everything outside this rank's blocks.
    func releaseAll() {
        for bucket in buckets.buckets { parameters.release(bucket.others) }
    }

    /// Counts and waiting since the last call.
    func takeTraffic() -> (gathers: Int, floats: Int, waited: Duration) {
        defer { gathers = 0; gatheredFloats = 0; waited = .zero }
        return (gathers, gatheredFloats, waited)
    }
}
