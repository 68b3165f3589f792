import Collectives
import Parallelism
import Tensor

/// This rank's slice of context parallelism (ring attention; Liu et al. 2023): every sequence's
/// positions are split over the `size` ranks of the group, which hold the same samples. Each
/// attention passes the group's K/V blocks round the ring (`passKeyValues`), and the backward
/// pass sums the K/V gradients each rank's queries formed back to the ranks holding those
/// positions (`scatterKeyValueGradients`). With `balanced`, rank r holds chunk r and chunk
/// 2·size − 1 − r of 2·size equal chunks, so causal attention gives every rank the same work.
///
/// Deterministic mode moves rows between the position split and a sample split
/// (`toSamples`, `fromSamples`): each rank forms the parameter gradients of its own node of
/// the batch's samples over whole sequences, exactly as one process does, and the attention's
/// backward for those samples with the one-process kernel.
public final class ContextShard {
    public let size: Int
    public let index: Int
    public let balanced: Bool
    /// The whole sequence length the positions split (nil on one rank).
    public let sequence: Int?
    let group: Communicator?
    /// Collectives issued over the group, the floats this rank handed to them and their time.
    public private(set) var exchanges = 0
    public private(set) var exchangedFloats = 0
    public private(set) var exchangeTime: Duration = .zero
    /// Staging: 0 and 1 the exchanges' own, 2… the arrangements handed back (`toSamples` slots).
    private let staging = ScratchPool()

    /// Every position on one rank.
    public static var whole: ContextShard { ContextShard(size: 1, index: 0, group: nil, sequence: nil) }

    public init(size: Int, index: Int, group: Communicator?, sequence: Int?, balanced: Bool = false) {
        precondition(size == 1 || (group?.size == size && sequence != nil), "a context-parallel shard needs its group and sequence length")
        self.size = size
        self.index = index
        self.group = group
        self.sequence = size > 1 ? sequence : nil
        self.balanced = balanced && size > 1
    }

    /// Where this rank's rows sit in a sequence of `sequence` positions (all of them on one rank).
    public func positions(sequence: Int) -> Attention.Positions {
        Attention.Positions(sequence: sequence, rows: size > 1 ? chunks(sequence: sequence) : [0..<sequence])
    }

    /// The global positions rank `rank` holds of a `sequence`-token sequence, in the order its
    /// rows keep them.
    public func chunks(of rank: Int, sequence: Int) -> [Range<Int>] {
        guard balanced else {
            let n = sequence / size
            return [(rank * n)..<((rank + 1) * n)]
        }
        let n = sequence / (2 * size), back = 2 * size - 1 - rank
        return [(rank * n)..<((rank + 1) * n), (back * n)..<((back + 1) * n)]
    }

    /// This rank's positions.
    public func chunks(sequence: Int) -> [Range<Int>] { chunks(of: index, sequence: sequence) }

    /// Positions of each sequence every rank holds.
    public func localSequence(_ sequence: Int) -> Int { sequence / size }

    /// Copies between rank `rank`'s rows of `sequences` sequences (`[sequences][sequence / size][width]`,
    /// its positions in chunk order) and whole sequences (`[sequences][sequence][width]`): every
    /// rearrangement between a rank's positions and position order goes through here.
    func copyRows<T>(of rank: Int, _ from: UnsafePointer<T>, _ to: UnsafeMutablePointer<T>, sequences: Int, sequence: Int, width: Int,
                     toWhole: Bool) {
        let held = localSequence(sequence), mine = chunks(of: rank, sequence: sequence)
        for s in 0..<sequences {
            var row = s * held
            for chunk in mine {
                let whole = (s * sequence + chunk.lowerBound) * width, rows = row * width
                (to + (toWhole ? whole : rows)).update(from: from + (toWhole ? rows : whole), count: chunk.count * width)
                row += chunk.count
            }
        }
    }

    /// Copies this rank's positions of whole sequences (`[batch][sequence][width]`) into `local`
    /// (`[batch][sequence / size][width]`).
    func take<T>(_ full: UnsafePointer<T>, into local: UnsafeMutablePointer<T>, batch: Int, sequence: Int, width: Int) {
        copyRows(of: index, full, local, sequences: batch, sequence: sequence, width: width, toWhole: false)
    }

    /// Staging slot `slot` (≥ 2, as `toSamples` numbers them) with room for `count` floats.
    func scratch(_ slot: Int, _ count: Int) -> UnsafeMutablePointer<Float> { staging.floats(slot, count) }

    /// Times and counts one collective of `floats`.
    private func counted<T>(_ floats: Int, _ body: () throws -> T) rethrows -> T {
        exchanges += 1
        exchangedFloats += floats
        let start = ContinuousClock.now
        defer { exchangeTime += ContinuousClock.now - start }
        return try body()
    }

    /// Ring attention's K/V pass: this rank's block (`count` floats) goes round the group; returns
    /// where every rank's block lands (rank-major) and calls `arrived(rank, block)` as each does.
    func passKeyValues(_ local: UnsafePointer<Float>, count: Int,
                       arrived: (Int, UnsafePointer<Float>) throws -> Void) throws -> UnsafePointer<Float> {
        let blocks = staging.floats(0, count * size)
        guard let group else {
            blocks.update(from: local, count: count)
            try arrived(0, blocks)
            return UnsafePointer(blocks)
        }
        // The work done on each block as it lands is compute, not the ring's time.
        var working: Duration = .zero
        try counted(count) {
            try group.ringPass(UnsafeBufferPointer(start: local, count: count), into: UnsafeMutableBufferPointer(start: blocks, count: count * size)) {
                let start = ContinuousClock.now
                defer { working += ContinuousClock.now - start }
                try arrived($0, blocks + $0 * count)
            }
        }
        exchangeTime -= working
        return UnsafePointer(blocks)
    }

    /// Sums `partial` (`[batch][sequence][width]` over whole sequences: what this rank's queries
    /// gave every position) over the group, leaving this rank's positions of the sum in `local`
    /// (`[batch][held][width]`, row stride `ldLocal`): a reduce-scatter, rank-major.
    func scatterKeyValueGradients(_ partial: UnsafePointer<Float>, into local: UnsafeMutablePointer<Float>, batch: Int, sequence: Int,
                                  width: Int, ldLocal: Int) throws {
        let held = localSequence(sequence), block = batch * held * width
        let stage = staging.floats(1, block * size)
        for r in 0..<size { copyRows(of: r, partial, stage + r * block, sequences: batch, sequence: sequence, width: width, toWhole: false) }
        var mine = 0..<block
        if let group {
            mine = try counted(block * size) { try group.reduceScatter(UnsafeMutableBufferPointer(start: stage, count: block * size)) }
        }
        for row in 0..<(batch * held) { (local + row * ldLocal).update(from: stage + mine.lowerBound + row * width, count: width) }
    }

    /// Deterministic mode: rows held by position (`[batch][groups][held][width]`, row stride `ld`)
    /// rearranged by sample: this rank receives whole sequences of its node of the batch, block
    /// `index` of `batch / size` samples (`[batch / size][groups][sequence][width]`), into staging
    /// slot `slot` (≥ 2; valid until that slot is asked for again).
    func toSamples(_ local: UnsafePointer<Float>, batch: Int, groups: Int = 1, sequence: Int, width: Int, ld: Int? = nil,
                   slot: Int) throws -> UnsafeMutablePointer<Float> {
        let held = localSequence(sequence), node = batch / size, ld = ld ?? width
        let block = node * groups * held * width
        let outgoing = staging.floats(0, block * size), incoming = staging.floats(1, block * size)
        for row in 0..<(batch * groups * held) { (outgoing + row * width).update(from: local + row * ld, count: width) }
        try exchange(outgoing, incoming, count: block * size)
        let out = staging.floats(slot, node * groups * sequence * width)
        for r in 0..<size { copyRows(of: r, incoming + r * block, out, sequences: node * groups, sequence: sequence, width: width, toWhole: true) }
        return out
    }

    /// The inverse of `toSamples`: whole sequences of this rank's samples
    /// (`[batch / size][groups][sequence][width]`) back to every rank's positions, this rank's in
    /// `local` (`[batch][groups][held][width]`).
    func fromSamples(_ samples: UnsafePointer<Float>, into local: UnsafeMutablePointer<Float>, batch: Int, groups: Int = 1, sequence: Int,
                     width: Int) throws {
        let held = localSequence(sequence), node = batch / size, block = node * groups * held * width
        let outgoing = staging.floats(0, block * size)
        for r in 0..<size { copyRows(of: r, samples, outgoing + r * block, sequences: node * groups, sequence: sequence, width: width, toWhole: false) }
        try exchange(outgoing, local, count: block * size)
    }

    private func exchange(_ outgoing: UnsafeMutablePointer<Float>, _ incoming: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let group else { return incoming.update(from: outgoing, count: count) }
        try counted(count) {
            try group.allToAll(UnsafeBufferPointer(start: outgoing, count: count), into: UnsafeMutableBufferPointer(start: incoming, count: count))
        }
    }
}
