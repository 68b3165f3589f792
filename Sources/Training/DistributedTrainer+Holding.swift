import Parallelism
import Tensor

/// What a rank keeps of the flat buffers. Every rank maps the whole model (so offsets,
/// checkpoints and messages look the same everywhere) but keeps only the pages of what it
/// holds: its stage's parameters (its shard's part of the split ones), their gradients and
/// optimizer state; ZeRO cuts each of these to the rank's 1/dp blocks in turn (1: optimizer
/// state, 2: and gradients, 3: and parameters between uses).
extension DistributedTrainer {
    /// The ZeRO stage in effect (none with one data-parallel rank: there is nothing to shard over).
    var zero: Int { layout.dp > 1 ? layout.zeroStage : 0 }

    /// Every range this rank updates: its stage's parameters, its shard's part of the split ones.
    var ownedRanges: [Range<Int>] { ranges(stage: stage, shard: coordinates.tp, counted: false) }

    /// Whether `range` (within one parameter) is a routed expert's under expert parallelism: held by
    /// one member of an expert-parallel group and summed over its holders, not the dp group.
    func isRoutedExpert(_ range: Range<Int>) -> Bool {
        layout.ep > 1 && model.layout.entry(containing: range.lowerBound).parameter.expert != nil
    }

    /// Parameters kept between uses: the rank's ZeRO blocks under ZeRO-3, else all it updates.
    var heldParameterRanges: [Range<Int>] { zero >= 3 ? buckets!.blocks : ownedRanges }
    /// Gradients kept once summed: the rank's blocks under ZeRO-2 and 3, else all it updates.
    var heldGradientRanges: [Range<Int>] { zero >= 2 ? buckets!.blocks : ownedRanges }

    /// Gives back the pages of every parameter this rank does not hold (another stage's or
    /// shard's; under ZeRO-3 other ranks' blocks). Done before the first step and after a restore.
    func releaseUnheld() {
        model.parameters.release(Self.complement(heldParameterRanges, count: model.layout.count))
        holdingApplied = true
    }

    /// Parameters, gradients and optimizer state this rank holds, in bytes: `held` counts the
    /// elements it keeps (what the memory model predicts), `resident` the pages the kernel
    /// reports in memory for those buffers now (mincore).
    func stateBytes() -> StateBytes {
        let elements = { (ranges: [Range<Int>]) in ranges.reduce(0) { $0 + $1.count } }
        let moments = shardedState.map { 2 * $0.firstMoment.count } ?? 2 * elements(ownedRanges)
        let held = (elements(heldParameterRanges) + elements(heldGradientRanges) + moments) * MemoryLayout<Float>.stride
        let resident = residentStateBytes()
        return StateBytes(held: held, resident: resident, peakResident: max(resident, stepPeakResident),
                          activations: microActivations.reduce(0) { $0 + $1.bytes })
    }

    /// The pages of the parameter, gradient and moment buffers in memory now (mincore).
    func residentStateBytes() -> Int {
        var resident = model.parameters.residentBytes + model.gradients.residentBytes
        resident += shardedState.map { $0.firstMoment.residentBytes + $0.secondMoment.residentBytes }
            ?? firstMoment.residentBytes + secondMoment.residentBytes
        return resident
    }

    /// The largest `lastStateBytes` over all ranks (each figure on its own), on every rank.
    func largestStateBytes() throws -> StateBytes {
        let s = lastStateBytes, n = transport.worldSize
        let mine = [s.held, s.resident, s.peakResident, s.activations].flatMap { ExactFloats.pieces(UInt64($0)) }
        var all = [Float](repeating: 0, count: 16 * n)
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try groups.world.allGather(input, into: $0) } }
        func figure(_ r: Int, _ k: Int) -> Int { Int(ExactFloats.value(all[(16 * r + 4 * k)..<(16 * r + 4 * k + 4)])) }
        return (0..<n).reduce(StateBytes.zero) { best, r in
            StateBytes(held: max(best.held, figure(r, 0)), resident: max(best.resident, figure(r, 1)), peakResident: max(best.peakResident, figure(r, 2)),
                       activations: max(best.activations, figure(r, 3)))
        }
    }

    /// The gaps of sorted, disjoint `ranges` within `0..<count`.
    static func complement(_ ranges: [Range<Int>], count: Int) -> [Range<Int>] {
        var gaps: [Range<Int>] = [], low = 0
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.lowerBound > low { gaps.append(low..<range.lowerBound) }
            low = max(low, range.upperBound)
        }
        if low < count { gaps.append(low..<count) }
        return gaps
    }

    /// Runs `body` with the whole stage's parameters in place (under ZeRO-3 gathered for it and
    /// let go after; `keep` leaves them in place, at the end of a run). Every rank of the
    /// data-parallel group must call it together.
    func withWholeParameters<T>(keep: Bool = false, _ body: () throws -> T) throws -> T {
        guard let weights = shardedWeights else { return try body() }
        try weights.gatherAll()
        defer { if !keep { weights.releaseAll() } }
        return try body()
    }
}

/// Bytes of parameters, gradients and optimizer state one rank holds (see `stateBytes()`), and
/// the most of those buffers' pages in memory at once during the step (sampled after every
/// backward pass: with several micro-batches, gradients accumulate unsharded until the last);
/// beside them, the bytes of the activation buffers it keeps for its micro-batches.
public struct StateBytes: Sendable, Hashable {
    public var held: Int
    public var resident: Int
    public var peakResident: Int
    public var activations = 0
    public static let zero = StateBytes(held: 0, resident: 0, peakResident: 0)
}
