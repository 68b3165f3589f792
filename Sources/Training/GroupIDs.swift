import Collectives

/// The communicator id ranges of the trainer's kinds of group. Ids (1…1023) travel in every
/// message's tag, so two groups a rank belongs to must never share one: each kind gets its own
/// range, and a layout with more groups of a kind than its range holds is refused.
enum GroupIDs {
    static let data: Range<Int32> = 1..<300
    static let pipeline: Range<Int32> = 300..<500
    static let expert: Range<Int32> = 500..<550
    static let expertData: Range<Int32> = 550..<600
    /// Context parallelism excludes expert parallelism (the layout refuses both), so its groups take the expert range.
    static let context: Range<Int32> = 500..<550
    static let embedding: Range<Int32> = 600..<800
    static let replica: Range<Int32> = 800..<900
    static let tensor: Range<Int32> = 900..<1024

    /// The id of group `index` of `groups` in `range`.
    static func id(in range: Range<Int32>, index: Int, groups: Int) throws -> Int32 {
        guard groups <= range.count else {
            throw TransportError.invalidGroup("this layout has \(groups) groups of one kind, more than the \(range.count) communicator ids fleet keeps for them; use fewer ranks per dimension")
        }
        return range.lowerBound + Int32(index)
    }
}
