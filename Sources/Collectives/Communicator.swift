import OpLog

/// A group of ranks over one transport: the world or any sub-group of it.
///
/// Collectives run on a communicator; every member must call the same collectives in
/// the same order. Messages of different groups and of successive collectives are kept
/// apart by their tags (group id, sequence number), so groups may overlap.
public final class Communicator {
    public let transport: Transport
    /// World ranks of the members, in group-rank order.
    public let members: [Int]
    /// This process's rank within the group.
    public let rank: Int
    public var size: Int { members.count }
    /// Tag space of this group (10 bits; the world is 0).
    public let groupID: Int32
    private var sequence: Int32 = 0
    /// Reusable scratch memory, so repeated collectives do not page-fault on fresh buffers.
    let scratch = ScratchBuffers()
    /// Tuning of the chunked algorithms.
    public var chunkBytes = 1 << 20
    /// What the group is for in a training step (`tensor`, `data`, `pipeline`, …): how its
    /// collectives and messages are named in an `OpLog`.
    public var role = ""
    /// This group split by host, once worked out (`hostHierarchy()`; `.some(nil)`: no split).
    var hierarchy: (local: Communicator, across: Communicator)??

    /// The communicator of all ranks of `transport`.
    public convenience init(world transport: Transport) {
        self.init(transport: transport, members: Array(0..<transport.worldSize), groupID: 0)
    }

    private init(transport: Transport, members: [Int], groupID: Int32) {
        self.transport = transport
        self.members = members
        self.rank = members.firstIndex(of: transport.rank) ?? -1
        self.groupID = groupID
    }

    /// A sub-group of the world. `members` are world ranks and must include this rank;
    /// every member must create the group with the same list. `id` picks a tag space
    /// (1…1023); by default it is derived from the member list.
    public func subgroup(_ members: [Int], id: Int32? = nil) throws -> Communicator {
        let world = transport.worldSize
        guard !members.isEmpty, Set(members).count == members.count, members.allSatisfy({ (0..<world).contains($0) }) else {
            throw TransportError.invalidGroup("members \(members) must be distinct ranks in 0..<\(world)")
        }
        guard members.contains(transport.rank) else {
            throw TransportError.invalidGroup("rank \(transport.rank) is not in group \(members)")
        }
        if let id, !(1...1023).contains(id) { throw TransportError.invalidGroup("group id \(id) is outside 1…1023") }
        let group = Communicator(transport: transport, members: members, groupID: id ?? Self.derivedID(members))
        group.chunkBytes = chunkBytes
        return group
    }

    /// A tag space (1…1023) derived from a member list (FNV-1a from `seed`), the same on every member.
    static func derivedID(_ members: [Int], seed: UInt32 = 2_166_136_261) -> Int32 {
        Int32(members.reduce(seed) { ($0 ^ UInt32($1)) &* 16_777_619 } % 1023 + 1)
    }

    /// The tag base of the next collective: group id in bits 20…29, sequence in bits 8…19;
    /// bits 0…7 are the collective's own (the ring tags each step).
    func nextCollectiveTag() -> Int32 {
        sequence = (sequence + 1) & 0xFFF
        return groupID << 20 | sequence << 8
    }

    /// The number of collectives this member has started (for error reports).
    public var collectiveCount: Int32 { sequence }

    // MARK: point-to-point within the group

    /// Tags for users' own point-to-point messages live apart from collective tags (bit 30).
    static func userTag(_ tag: Int32, group: Int32) -> Int32 {
        precondition((0..<(1 << 20)).contains(tag), "user tags must be in 0..<2^20")
        return 1 << 30 | group << 20 | tag
    }

    public func isend(_ data: UnsafeRawBufferPointer, to groupRank: Int, tag: Int32) throws -> Request {
        try OpLog.communication("send", group: role, bytes: data.count, tag: Int(tag)) {
            try transport.isend(data, to: try worldRank(groupRank), tag: Self.userTag(tag, group: groupID))
        }
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from groupRank: Int, tag: Int32) throws -> Request {
        try OpLog.communication("recv", group: role, bytes: buffer.count, tag: Int(tag)) {
            try transport.irecv(into: buffer, from: try worldRank(groupRank), tag: Self.userTag(tag, group: groupID))
        }
    }

    /// Runs a collective over `floats` of this rank's, logged as `kind` when the group has peers.
    func logged<T>(_ kind: String, floats: Int, _ body: () throws -> T) rethrows -> T {
        guard size > 1 else { return try body() }
        return try OpLog.communication(kind, group: role, bytes: floats * MemoryLayout<Float>.stride, body)
    }

    public func worldRank(_ groupRank: Int) throws -> Int {
        guard (0..<size).contains(groupRank) else { throw TransportError.invalidRank(groupRank, worldSize: size) }
        return members[groupRank]
    }

    // MARK: helpers for collective algorithms (group ranks, raw tags)

    func isend(_ data: UnsafeBufferPointer<Float>, to groupRank: Int, tag: Int32) throws -> Request {
        try transport.isend(UnsafeRawBufferPointer(data), to: members[groupRank], tag: tag)
    }

    func irecv(_ buffer: UnsafeMutableBufferPointer<Float>, from groupRank: Int, tag: Int32) throws -> Request {
        try transport.irecv(into: UnsafeMutableRawBufferPointer(buffer), from: members[groupRank], tag: tag)
    }

    /// A receive that combines into `buffer` on arrival, where the transport can do that.
    func irecvReducing(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp, from groupRank: Int, tag: Int32) throws -> Request? {
        try transport.irecvReducing(into: buffer, op: op, from: members[groupRank], tag: tag)
    }

    /// A receive relayed on to `next` as it arrives, where the transport can do that.
    func irecvForwarding(_ buffer: UnsafeMutableBufferPointer<Float>, op: ReduceOp?, from groupRank: Int, tag: Int32,
                         to next: Int, forwardTag: Int32, keep: Bool) throws -> (receive: Request, forward: Request)? {
        try transport.irecvForwarding(into: buffer, op: op, from: members[groupRank], tag: tag,
                                      to: members[next], forwardTag: forwardTag, keep: keep)
    }

    func wait(_ requests: [Request], _ operation: @autoclosure () -> String) throws {
        try transport.wait(requests, operation: "\(operation()) [group \(groupID) of \(size) ranks, collective #\(sequence)]")
    }
}

/// Growable scratch buffers kept by a communicator between collectives.
final class ScratchBuffers {
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []

    /// Scratch buffer `slot` with room for at least `count` floats (contents undefined).
    func floats(_ count: Int, slot: Int = 0) -> UnsafeMutableBufferPointer<Float> {
        while buffers.count <= slot { buffers.append(UnsafeMutableBufferPointer(start: nil, count: 0)) }
        if buffers[slot].count < count {
            buffers[slot].deallocate()
            buffers[slot] = .allocate(capacity: max(count, 16))
        }
        return UnsafeMutableBufferPointer(rebasing: buffers[slot][0..<count])
    }

    /// Staging buffers handed out to operations that may be in flight at the same time.
    private var spare: [UnsafeMutableBufferPointer<Float>] = []

    /// A buffer of at least `count` floats (possibly more) for one operation; return it with `giveBack`.
    func borrow(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        if let index = spare.firstIndex(where: { $0.count >= count }) { return spare.remove(at: index) }
        return .allocate(capacity: max(count, 16))
    }

    func giveBack(_ buffer: UnsafeMutableBufferPointer<Float>) { spare.append(buffer) }

    deinit {
        buffers.forEach { $0.deallocate() }
        spare.forEach { $0.deallocate() }
    }
}
