import Collectives
import Foundation

/// A fault the trainer detected in its own numbers.
public enum TrainingFault: Error, CustomStringConvertible {
    case nonFinite(step: Int, norm: Float, tensor: String?, rank: Int)
    case replicasDiverged(step: Int, ranks: [Int])

    public var description: String {
        switch self {
        case let .nonFinite(step, norm, tensor, rank):
            return "step \(step): the gradient is not finite (global norm \(norm))"
                + (tensor.map { "; the first non-finite value on rank \(rank) is in \($0)" } ?? "")
                + "; resume from the last checkpoint (--max-restarts does it automatically) or lower --lr"
        case let .replicasDiverged(step, ranks):
            return "step \(step): data-parallel replicas hold different parameters (suspect world ranks \(ranks.map(String.init).joined(separator: ", ")): "
                + "their parameters differ from the majority, or there is no majority): silent corruption; resume from the last checkpoint (--max-restarts does it automatically)"
        }
    }
}

extension DistributedTrainer {
    /// Compares a CRC32C of the parameters this rank updates across its data-parallel group:
    /// replicas must hold identical bits, so any difference is silent corruption.
    func checkReplicas(step: Int) throws {
        // Under ZeRO-3 no two replicas hold the same parameters between passes: nothing to compare.
        guard layout.dp > 1, zero < 3 else { return }
        // Under expert parallelism the routed experts are compared among the ranks holding the same ones.
        let mine = ranges(stage: stage, shard: coordinates.tp, counted: false)
        try compareReplicas(mine.filter { !isRoutedExpert($0) }, over: groups.dp, step: step)
        if let holders = groups.expertData, holders.size > 1 { try compareReplicas(mine.filter(isRoutedExpert), over: holders, step: step) }
    }

    /// Throws `replicasDiverged` naming the members of `group` whose copies of `ranges` differ from the majority's.
    private func compareReplicas(_ ranges: [Range<Int>], over group: Communicator, step: Int) throws {
        var crc: UInt32 = 0
        for range in ranges {
            crc = CRC32C.checksum(UnsafeRawBufferPointer(start: model.parameters.pointer + range.lowerBound, count: range.count * 4), continuing: crc)
        }
        let mine = ExactFloats.pieces(UInt64(crc), count: 2)
        var all = [Float](repeating: 0, count: 2 * group.size)
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try group.allGather(input, into: $0) } }
        let hashes = (0..<group.size).map { ExactFloats.value(all[(2 * $0)..<(2 * $0 + 2)]) }
        guard Set(hashes).count > 1 else { return }
        // The majority is presumed right; without one (two replicas), every replica is suspect.
        let counts = Dictionary(hashes.map { ($0, 1) }, uniquingKeysWith: +)
        let best = counts.values.max()!
        let majority = counts.filter { $0.value == best }.count == 1 ? counts.first { $0.value == best }!.key : nil
        let suspects = (0..<group.size).filter { majority == nil || hashes[$0] != majority }
        throw TrainingFault.replicasDiverged(step: step + 1, ranks: try suspects.map { try group.worldRank($0) })
    }

    /// Fails the step when the global gradient norm is NaN or infinite (every rank sees the
    /// same norm, so every rank stops together), naming the first bad tensor it holds.
    func checkFinite(_ norm: Float, step: Int) throws {
        guard !norm.isFinite else { return }
        var tensor: String?
        search: for range in ranges(stage: stage, shard: coordinates.tp, counted: false) {
            for i in range where !model.gradients.pointer[i].isFinite || abs(model.gradients.pointer[i]) > 1e30 {
                tensor = model.layout.entry(containing: i).name
                break search
            }
        }
        throw TrainingFault.nonFinite(step: step + 1, norm: norm, tensor: tensor, rank: transport.rank)
    }
}
