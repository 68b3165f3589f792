/// A collective that runs in pieces between other work: `advance()` does what needs no
/// waiting, `finish()` waits for the rest (a ring, or the phases of a hierarchical all-reduce).
public protocol CollectiveOperation: AnyObject {
    @discardableResult func advance() throws -> Bool
    func finish() throws
}

extension RingOperation: CollectiveOperation {}

/// Hierarchical all-reduce: reduce-scatter among the members on each host (shared memory),
/// all-reduce of each rank's block around the ring of the members at the same place on every
/// host (the network), all-gather on each host. The network carries 1/L of the buffer per rank
/// for L ranks per host, where a flat ring sends all of it across hosts.
public final class HierarchicalOperation: CollectiveOperation {
    private var phases: [() throws -> RingOperation]
    private var current: RingOperation?
    private var done = 0
    private let completion: () -> Void

    init(phases: [() throws -> RingOperation], completion: @escaping () -> Void) {
        self.phases = phases
        self.completion = completion
    }

    @discardableResult
    public func advance() throws -> Bool {
        while done < phases.count {
            if current == nil { current = try phases[done]() }
            guard try current!.advance() else { return false }
            current = nil
            done += 1
            if done == phases.count { completion() }
        }
        return true
    }

    public func finish() throws {
        while done < phases.count {
            if current == nil { current = try phases[done]() }
            try current!.finish()
            current = nil
            done += 1
            if done == phases.count { completion() }
        }
    }
}

extension Communicator {
    /// The members on this rank's host and the members at this rank's place on every host (in
    /// order of first appearance), as communicators; nil when all members share one host or
    /// hosts hold different numbers of them (then the flat ring is the hierarchical one).
    public func hostHierarchy() throws -> (local: Communicator, across: Communicator)? {
        if let cached = hierarchy { return cached }
        var order: [String] = [], byHost: [String: [Int]] = [:]
        for member in members {
            let host = transport.host(of: member) ?? ""
            if byHost[host] == nil { order.append(host) }
            byHost[host, default: []].append(member)
        }
        let groups = order.map { byHost[$0]! }
        guard groups.count > 1, Set(groups.map(\.count)).count == 1 else { hierarchy = .some(nil); return nil }
        let mine = groups.first { $0.contains(transport.rank) }!, place = mine.firstIndex(of: transport.rank)!
        // Tag spaces of their own (not the ones derived from the member lists alone, which another group may share).
        let seed = UInt32(groupID) &* 31, ring = groups.map { $0[place] }
        let local = try subgroup(mine, id: Self.derivedID(mine, seed: seed &+ 1)), across = try subgroup(ring, id: Self.derivedID(ring, seed: seed &+ 2))
        hierarchy = .some((local, across))
        return (local, across)
    }

    /// Starts a hierarchical all-reduce of `buffer` (a flat ring where the members do not
    /// split evenly over several hosts); drive it with `advance()`, complete it with `finish()`.
    public func startHierarchicalAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp = .sum) throws -> CollectiveOperation {
        guard size > 1, try hostHierarchy() != nil else { return try startAllReduce(buffer, op: op) }
        return try logged("allreduce", floats: buffer.count) { try hierarchicalOperation(buffer, op: op) }
    }

    /// The phases of a hierarchical all-reduce (or a ring, see above), unlogged.
    func hierarchicalOperation(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp) throws -> CollectiveOperation {
        guard size > 1, let (local, across) = try hostHierarchy() else { return try ringAllReduce(buffer, op: op, name: "all-reduce (ring)") }
        let inner: ReduceOp = op == .average ? .sum : op
        let l = local.size, h = across.size
        let partition = BlockPartition(count: buffer.count, parts: l), block = partition.range(local.rank)
        // Every member reserves the three phases' tags now, in the same order, however its phases interleave later.
        let tags = (local.nextCollectiveTag(), across.nextCollectiveTag(), local.nextCollectiveTag())
        let size = self.size
        return HierarchicalOperation(phases: [
            { try RingOperation(local, data: buffer, partition: partition, shift: 0, steps: 0..<(l - 1), op: inner, tag: tags.0,
                                name: "all-reduce (hierarchical): reduce-scatter on the host") },
            { try RingOperation(across, data: buffer.slice(block), partition: BlockPartition(count: block.count, parts: h), shift: 1,
                                steps: 0..<(2 * (h - 1)), op: inner, tag: tags.1, name: "all-reduce (hierarchical): ring across hosts") },
            { try RingOperation(local, data: buffer, partition: partition, shift: 0, steps: (l - 1)..<(2 * (l - 1)), op: .sum, tag: tags.2,
                                name: "all-reduce (hierarchical): all-gather on the host") },
        ]) { op.finish(buffer, groupSize: size) }
    }
}
