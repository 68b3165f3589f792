/// The world as a dp × pp × tp grid of ranks: each rank's coordinates and the ranks it
/// shares a data-, tensor- or pipeline-parallel group with. A pure value, passed explicitly.
///
/// Ranks are numbered with tensor parallelism innermost (neighbouring ranks share the most
/// traffic), then data, then pipeline: `rank = (pp · dp + dp_index) · tp + tp_index`.
public struct DeviceMesh: Sendable, Hashable, Codable {
    public let dp: Int
    public let tp: Int
    public let pp: Int
    /// Expert parallelism: consecutive groups of `ep` data-parallel indices split the experts.
    public let ep: Int
    /// Context parallelism: consecutive groups of `cp` data-parallel indices split each sequence.
    public let cp: Int

    public struct Coordinates: Sendable, Hashable, Codable, CustomStringConvertible {
        public let dp: Int, tp: Int, pp: Int
        public var description: String { "dp\(dp) tp\(tp) pp\(pp)" }
    }

    public init(dp: Int, tp: Int, pp: Int, ep: Int = 1, cp: Int = 1) {
        // ep dividing dp is the layout's check (with a message); a mesh only needs positive sizes.
        precondition(dp > 0 && tp > 0 && pp > 0 && ep > 0 && cp > 0, "mesh dimensions must be positive")
        self.dp = dp
        self.tp = tp
        self.pp = pp
        self.ep = ep
        self.cp = cp
    }

    private enum CodingKeys: String, CodingKey { case dp, tp, pp, ep, cp }

    /// Meshes written before context parallelism existed read as without it.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dp: try c.decode(Int.self, forKey: .dp), tp: try c.decode(Int.self, forKey: .tp), pp: try c.decode(Int.self, forKey: .pp),
                  ep: try c.decodeIfPresent(Int.self, forKey: .ep) ?? 1, cp: try c.decodeIfPresent(Int.self, forKey: .cp) ?? 1)
    }

    public var worldSize: Int { dp * tp * pp }

    public func coordinates(of rank: Int) -> Coordinates {
        Coordinates(dp: (rank / tp) % dp, tp: rank % tp, pp: rank / (tp * dp))
    }

    public func rank(_ c: Coordinates) -> Int { (c.pp * dp + c.dp) * tp + c.tp }

    public func rank(dp d: Int, tp t: Int, pp p: Int) -> Int { rank(Coordinates(dp: d, tp: t, pp: p)) }

    /// Ranks holding the same model shard on other data: gradients are averaged among them.
    public func dpGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        return (0..<dp).map { self.rank(dp: $0, tp: c.tp, pp: c.pp) }
    }

    /// Ranks that split one replica's experts among them and trade tokens (all-to-all): `ep`
    /// consecutive data-parallel indices, same tensor shard and stage.
    public func epGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank), first = c.dp / ep * ep
        return (first..<min(dp, first + ep)).map { self.rank(dp: $0, tp: c.tp, pp: c.pp) }
    }

    /// Ranks that split the same sequences' positions and pass K/V blocks round a ring (ring
    /// attention): `cp` consecutive data-parallel indices, same tensor shard and stage.
    public func cpGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank), first = c.dp / cp * cp
        return (first..<min(dp, first + cp)).map { self.rank(dp: $0, tp: c.tp, pp: c.pp) }
    }

    /// Ranks holding the same experts: the members of every expert-parallel group at this rank's
    /// position in it (same tensor shard and stage), in data-parallel order. Their experts'
    /// gradients are summed among them, as the rest of the model's are over the dp group.
    public func expertDataGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        return stride(from: c.dp % ep, to: dp, by: ep).map { self.rank(dp: $0, tp: c.tp, pp: c.pp) }
    }

    /// Ranks that split the same layers' matrices.
    public func tpGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        return (0..<tp).map { self.rank(dp: c.dp, tp: $0, pp: c.pp) }
    }

    /// Ranks that hold consecutive stages of the same model replica and shard.
    public func ppGroup(of rank: Int) -> [Int] {
        let c = coordinates(of: rank)
        return (0..<pp).map { self.rank(dp: c.dp, tp: c.tp, pp: $0) }
    }

    /// Every group of each kind, for creating communicators in the same order on every rank.
    public var allDPGroups: [[Int]] { uniqueGroups(dpGroup) }
    public var allTPGroups: [[Int]] { uniqueGroups(tpGroup) }
    public var allPPGroups: [[Int]] { uniqueGroups(ppGroup) }
    public var allEPGroups: [[Int]] { uniqueGroups(epGroup) }
    public var allExpertDataGroups: [[Int]] { uniqueGroups(expertDataGroup) }
    public var allCPGroups: [[Int]] { uniqueGroups(cpGroup) }

    private func uniqueGroups(_ group: (Int) -> [Int]) -> [[Int]] {
        var seen = Set<[Int]>(), result: [[Int]] = []
        for r in 0..<worldSize where seen.insert(group(r)).inserted { result.append(group(r)) }
        return result
    }

    /// The rank of the next pipeline stage (same dp and tp index), if any.
    public func nextStage(of rank: Int) -> Int? {
        let c = coordinates(of: rank)
        return c.pp + 1 < pp ? self.rank(dp: c.dp, tp: c.tp, pp: c.pp + 1) : nil
    }

    public func previousStage(of rank: Int) -> Int? {
        let c = coordinates(of: rank)
        return c.pp > 0 ? self.rank(dp: c.dp, tp: c.tp, pp: c.pp - 1) : nil
    }
}
