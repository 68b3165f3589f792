/// Collective algorithms on a fabric, step by step: every step is a set of messages that
/// start together, timed by the network model, and the steps run one after another.
public struct CollectiveModel: Sendable {
    public enum Algorithm: String, Sendable, Hashable, Codable, CaseIterable {
        case ring, tree, halvingDoubling = "halving-doubling", hierarchical
        /// NCCL's two complementary binary trees, each carrying half the buffer, pipelined in chunks.
        case doubleBinaryTree = "double-binary-tree"
        /// The fastest of the others for each collective's size and group on this fabric.
        case auto

        /// The algorithms `auto` chooses among for an all-reduce, and for its reduce-scatter or
        /// all-gather half (the trees have no halves).
        public static let concrete: [Algorithm] = [.ring, .tree, .halvingDoubling, .hierarchical, .doubleBinaryTree]
        public static let halving: [Algorithm] = [.ring, .halvingDoubling, .hierarchical]
        /// Whether the algorithm has reduce-scatter and all-gather halves (what ZeRO needs).
        public var hasHalves: Bool { ![.tree, .doubleBinaryTree].contains(self) }
    }

    public let network: NetworkModel

    public init(network: NetworkModel) { self.network = network }

    /// All-reduce of `bytes` per member over `group` (GPU ids, in ring order).
    public func allReduce(_ group: [Int], bytes: Double, algorithm: Algorithm = .ring) -> SimTime {
        guard group.count > 1, bytes > 0 else { return .zero }
        switch algorithm {
        case .ring: return reduceScatter(group, bytes: bytes) + allGather(group, bytes: bytes)
        case .tree: return treeAllReduce(group, bytes: bytes)
        case .halvingDoubling: return halvingDoubling(group, bytes: bytes)
        case .hierarchical: return hierarchical(group, bytes: bytes)
        case .doubleBinaryTree: return doubleBinaryTree(group, bytes: bytes)
        case .auto: return fastest(group, bytes: bytes).time
        }
    }

    /// The fastest algorithm for one collective of `bytes` over `group` (`part`: the whole
    /// all-reduce, or its reduce-scatter or all-gather half), ties to the earlier in the list.
    public func fastest(_ group: [Int], bytes: Double, part: Part = .all) -> (algorithm: Algorithm, time: SimTime) {
        let candidates = part == .all ? Algorithm.concrete : Algorithm.halving
        return candidates.map { ($0, time(part, group, bytes: bytes, algorithm: $0)) }.min { $0.1 < $1.1 }!
    }

    /// The whole all-reduce, or its reduce-scatter or all-gather half, by `algorithm`.
    public func time(_ part: Part, _ group: [Int], bytes: Double, algorithm: Algorithm) -> SimTime {
        part == .all ? allReduce(group, bytes: bytes, algorithm: algorithm) : half(part, group, bytes: bytes, algorithm: algorithm)
    }

    /// Ring reduce-scatter: n − 1 steps, each member sending a 1/n block to its successor.
    /// Every step moves the same blocks over the same routes, so one step is timed and
    /// repeated (`explicitSteps` times each of them, for tests of that reduction).
    public func reduceScatter(_ group: [Int], bytes: Double, explicitSteps: Bool = false) -> SimTime {
        if explicitSteps { return (0..<(group.count - 1)).reduce(.zero) { total, _ in total + ringSteps(group, block: bytes / Double(group.count)) } }
        return ringSteps(group, block: bytes / Double(group.count)) * (group.count - 1)
    }

    /// Ring all-reduces of `bytes` over several groups at once (every tensor shard's and
    /// stage's data-parallel group at the end of a step): each step carries every group's
    /// messages, so under flow-level fidelity groups that share links slow each other down.
    public func concurrentRingAllReduce(_ groups: [[Int]], bytes: Double) -> SimTime {
        guard let n = groups.first?.count, n > 1, bytes > 0 else { return .zero }
        let block = bytes / Double(n)
        var messages: [Message] = []
        for (g, group) in groups.enumerated() {
            for i in group.indices { messages.append(Message(from: group[i], to: group[(i + 1) % group.count], bytes: block, flow: UInt64(g * n + i))) }
        }
        return network.time(messages) * (2 * (n - 1))
    }

    /// Reduce-scatter by `algorithm` (ZeRO's gradient step): the first half of its all-reduce.
    /// A binomial tree has no reduce-scatter; asking for one is a scenario error caught when it
    /// is read, so here it is priced as the ring's.
    public func reduceScatter(_ group: [Int], bytes: Double, algorithm: Algorithm) -> SimTime {
        half(.reduceScatter, group, bytes: bytes, algorithm: algorithm)
    }

    /// All-gather by `algorithm` (ZeRO's parameter step): the second half of its all-reduce.
    public func allGather(_ group: [Int], bytes: Double, algorithm: Algorithm) -> SimTime {
        half(.allGather, group, bytes: bytes, algorithm: algorithm)
    }

    private func half(_ part: Part, _ group: [Int], bytes: Double, algorithm: Algorithm) -> SimTime {
        guard group.count > 1, bytes > 0 else { return .zero }
        switch algorithm {
        case .auto: return fastest(group, bytes: bytes, part: part).time
        case .ring, .tree, .doubleBinaryTree: return part == .allGather ? allGather(group, bytes: bytes) : reduceScatter(group, bytes: bytes)
        case .halvingDoubling: return halvingDoubling(group, bytes: bytes, half: true)
        case .hierarchical: return hierarchical(group, bytes: bytes, part: part)
        }
    }

    /// Ring all-gather: the same n − 1 steps as a reduce-scatter.
    public func allGather(_ group: [Int], bytes: Double) -> SimTime {
        ringSteps(group, block: bytes / Double(group.count)) * (group.count - 1)
    }

    private func ringSteps(_ group: [Int], block: Double) -> SimTime {
        guard group.count > 1 else { return .zero }
        return network.time(group.indices.map { Message(from: group[$0], to: group[($0 + 1) % group.count], bytes: block, flow: UInt64($0)) })
    }

    /// Binomial-tree reduce to the first member, then broadcast back: 2⌈log₂ n⌉ rounds of the whole buffer.
    func treeAllReduce(_ group: [Int], bytes: Double) -> SimTime {
        var rounds: [SimTime] = [], distance = 1
        while distance < group.count {
            let pairs = stride(from: 0, to: group.count - distance, by: 2 * distance).map {
                Message(from: group[$0 + distance], to: group[$0], bytes: bytes, flow: UInt64($0))
            }
            rounds.append(network.time(pairs))
            distance *= 2
        }
        // The broadcast retraces the reduce's rounds in reverse, on the same links.
        return rounds.reduce(.zero, +) * 2
    }

    /// NCCL's double binary tree: two binary trees over the group (the second the mirror of
    /// the first, so most ranks are inner nodes of one and leaves of the other), each reducing
    /// half the buffer up to its root and broadcasting it back down, in chunks that follow each
    /// other through the tree. Every pipeline step sends one chunk over every edge of both trees
    /// in both directions; with `depth` levels and `k` chunks a step repeats 2·depth + k − 1 times.
    /// Under analytical fidelity (no contention) a step also waits for the busiest sender's NIC
    /// to serialise its chunks.
    func doubleBinaryTree(_ group: [Int], bytes: Double) -> SimTime {
        let n = group.count
        guard n > 1 else { return .zero }
        if n == 2 { return network.time([Message(from: group[0], to: group[1], bytes: bytes), Message(from: group[1], to: group[0], bytes: bytes, flow: 1)]) }
        let half = bytes / 2, chunk = min(half, 1_048_576.0), chunks = (half / chunk).rounded(.up)
        var edges: [(child: Int, parent: Int)] = []
        for i in 1..<n {
            edges.append((group[i], group[(i - 1) / 2]))                             // tree 1: heap order
            edges.append((group[n - 1 - i], group[n - 1 - (i - 1) / 2]))             // tree 2: the mirror
        }
        var messages: [Message] = []
        for (k, e) in edges.enumerated() {
            messages.append(Message(from: e.child, to: e.parent, bytes: chunk, flow: UInt64(2 * k)))
            messages.append(Message(from: e.parent, to: e.child, bytes: chunk, flow: UInt64(2 * k + 1)))
        }
        var step = network.time(messages)
        if network is AnalyticalNetwork {
            let perSender = Dictionary(grouping: messages, by: \.from).values.map(\.count).max() ?? 1
            let latency = network.time(messages.map { Message(from: $0.from, to: $0.to, bytes: 0, flow: $0.flow) })
            step = latency + (step - latency) * perSender
        }
        var depth = 0
        while 1 << (depth + 1) <= n { depth += 1 }
        return step * Int(Double(2 * depth) + chunks - 1)
    }

    /// Recursive halving reduce-scatter then recursive doubling all-gather; members beyond the
    /// largest power of two first fold their data into a partner and get the result back.
    /// With `half`, one of the two mirrored halves: the recursive-halving reduce-scatter (and
    /// the fold in) or the recursive-doubling all-gather (and the result back out).
    func halvingDoubling(_ group: [Int], bytes: Double, half: Bool = false) -> SimTime {
        let phases = half ? 1 : 2
        var power = 1
        while power * 2 <= group.count { power *= 2 }
        let extra = group.count - power
        var total = SimTime.zero
        if extra > 0 {
            let fold = (0..<extra).map { Message(from: group[power + $0], to: group[$0], bytes: bytes, flow: UInt64($0)) }
            total += network.time(fold) * phases   // fold in, and the result back out
        }
        var size = bytes / 2, distance = power / 2
        while distance >= 1 {
            let round = (0..<power).map { Message(from: group[$0], to: group[$0 ^ distance], bytes: size, flow: UInt64($0)) }
            total += network.time(round) * phases   // the halving step and its mirror in the doubling
            size /= 2
            distance /= 2
        }
        return total
    }

    public enum Part: Sendable { case all, reduceScatter, allGather }

    /// Reduce-scatter inside each node, ring all-reduce of 1/g across nodes (all g local
    /// ranks at once), all-gather inside each node; `part` takes the reduce-scatter half (inside,
    /// then a ring reduce-scatter across) or the all-gather half (a ring all-gather across, then inside).
    func hierarchical(_ group: [Int], bytes: Double, part: Part = .all) -> SimTime {
        let fabric = network.fabric
        let byNode = Dictionary(grouping: group, by: fabric.node(of:)).values.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        let local = byNode.map(\.count).min() ?? 1
        guard byNode.count > 1, local > 1, byNode.allSatisfy({ $0.count == local }) else {
            return part == .all ? allReduce(group, bytes: bytes, algorithm: .ring) : half(part, group, bytes: bytes, algorithm: .ring)
        }
        let across = { (half: (([Int], Double) -> SimTime)) in (0..<local).map { i in half(byNode.map { $0[i] }, bytes / Double(local)) }.max() ?? .zero }
        let inside = byNode.map { reduceScatter($0, bytes: bytes) }.max() ?? .zero
        let gather = byNode.map { allGather($0, bytes: bytes) }.max() ?? .zero
        switch part {
        case .all: return inside + across { allReduce($0, bytes: $1, algorithm: .ring) } + gather
        case .reduceScatter: return inside + across { reduceScatter($0, bytes: $1) }
        case .allGather: return across { allGather($0, bytes: $1) } + gather
        }
    }

    /// Personalised exchange: n − 1 rounds, in round r member i sends its 1/n block to member i + r.
    public func allToAll(_ group: [Int], bytes: Double) -> SimTime {
        let n = group.count, block = bytes / Double(n)
        return (1..<max(n, 1)).reduce(SimTime.zero) { total, r in
            total + network.time(group.indices.map { Message(from: group[$0], to: group[($0 + r) % n], bytes: block, flow: UInt64($0 * n + r)) })
        }
    }

    public func pointToPoint(from: Int, to: Int, bytes: Double) -> SimTime {
        network.time([Message(from: from, to: to, bytes: bytes)])
    }
}
