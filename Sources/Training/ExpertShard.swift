import Collectives

/// This rank's part of expert parallelism (GShard, Lepikhin et al. 2020): of a mixture of
/// experts' routed experts it holds and computes `held` (experts/ep consecutive ones); the
/// tokens its micro-batch routes elsewhere travel to their expert's holder and back over the
/// expert-parallel group, by all-to-all. Without expert parallelism (`whole`) every expert is
/// here and nothing moves.
public final class ExpertShard {
    public let size: Int
    public let index: Int
    /// The routed experts this rank holds.
    public let held: Range<Int>
    let group: Communicator?
    /// All-to-alls issued, the floats this rank handed to them, and the time spent in them.
    public private(set) var exchanges = 0
    public private(set) var exchangedFloats = 0
    public private(set) var exchangeTime: Duration = .zero
    /// What the exchanges send from and receive into (slot 0: outgoing, 1: incoming).
    let staging = ScratchPool()

    /// Every expert on one rank.
    public static func whole(experts: Int) -> ExpertShard { ExpertShard(size: 1, index: 0, experts: experts, group: nil) }

    public init(size: Int, index: Int, experts: Int, group: Communicator?) {
        precondition(size == 1 || group?.size == size, "an expert-parallel shard needs its group")
        precondition(experts % size == 0, "experts split evenly over the expert-parallel group")
        self.size = size
        self.index = index
        let share = experts / size
        held = (index * share)..<((index + 1) * share)
        self.group = group
    }

    /// Sends `counts[r]` floats of `input` (blocks in member order) to member r and returns what
    /// came from each, in member order, in `output` — timed and counted as one exchange.
    @discardableResult
    func exchange(_ input: UnsafePointer<Float>, counts: [Int], into output: UnsafeMutablePointer<Float>, capacity: Int) throws -> [Int] {
        guard let group else { preconditionFailure("one rank holding every expert exchanges nothing") }
        let floats = counts.reduce(0, +), start = ContinuousClock.now
        defer {
            exchanges += 1
            exchangedFloats += floats
            exchangeTime += ContinuousClock.now - start
        }
        return try group.allToAllV(UnsafeBufferPointer(start: input, count: floats), sendCounts: counts,
                                   into: UnsafeMutableBufferPointer(start: output, count: capacity))
    }
}

/// The rows a holder serves for one MoE block of one micro-batch: how many each member sent
/// each held expert from each of its samples, and which global samples those are. Rows arrive
/// member-major (each member's rows expert by expert, sample by sample) and are computed
/// expert-major (each expert's rows member by member), so every expert runs one product.
struct ServedRows {
    /// counts[member][expert k of `held`][sample].
    let counts: [[[Int]]]
    /// The global index of each member's micro-batch's first sample.
    let firstSample: [Int]

    var members: Int { counts.count }
    var experts: Int { counts.first?.count ?? 0 }
    func rows(member p: Int, expert k: Int) -> Int { counts[p][k].reduce(0, +) }
    func rows(member p: Int) -> Int { (0..<experts).reduce(0) { $0 + rows(member: p, expert: $1) } }
    func rows(expert k: Int) -> Int { (0..<members).reduce(0) { $0 + rows(member: $1, expert: k) } }
    var total: Int { (0..<members).reduce(0) { $0 + rows(member: $1) } }

    /// Row where expert k's rows start in expert-major order, and where member p's start within them.
    func expertStart(_ k: Int) -> Int { (0..<k).reduce(0) { $0 + rows(expert: $1) } }
    func start(expert k: Int, member p: Int) -> Int { expertStart(k) + (0..<p).reduce(0) { $0 + rows(member: $1, expert: k) } }
    /// Row where member p's rows for expert k start in member-major order.
    func memberStart(_ p: Int, expert k: Int) -> Int {
        (0..<p).reduce(0) { $0 + rows(member: $1) } + (0..<k).reduce(0) { $0 + rows(member: p, expert: $1) }
    }

    /// Member p's rows for expert k as one range per sample, relative to their first row.
    func sampleRanges(member p: Int, expert k: Int) -> [Range<Int>] {
        var at = 0
        return counts[p][k].map { n in defer { at += n }; return at..<(at + n) }
    }

    /// Copies `width`-wide rows between member-major and expert-major order; `memberOffsets`
    /// place each member's rows in the member-major buffer (floats; packed one after another by default).
    func permute(_ from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>, width: Int, toExpertMajor: Bool, memberOffsets: [Int]? = nil) {
        for p in 0..<members {
            let base = memberOffsets?[p] ?? memberStart(p, expert: 0) * width
            for k in 0..<experts {
                let n = rows(member: p, expert: k), expert = start(expert: k, member: p) * width
                let member = base + (memberStart(p, expert: k) - memberStart(p, expert: 0)) * width
                guard n > 0 else { continue }
                if toExpertMajor { (to + expert).update(from: from + member, count: n * width) }
                else { (to + member).update(from: from + expert, count: n * width) }
            }
        }
    }
}
