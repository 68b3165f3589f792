import CFleetSys
import Foundation

/// How lanes are shaped and set up: each rank creates its segment, its local peers map it,
/// and the name is unlinked once they have.
extension SharedMemoryLanes {
    /// Slots per lane, bytes per slot and how slots are written: `FLEET_SHM_SLOTS`,
    /// `FLEET_SHM_SLOT_BYTES`, `FLEET_SHM_STORES` (auto, plain or stream).
    struct Geometry {
        enum Stores: String { case auto, plain, stream }
        var slots = 8
        var slotBytes = 256 << 10
        var stores = Stores.auto

        /// With more ranks than cores, lanes hold 4 slots, not 8: two ranks share each core's
        /// cache, and half the slot memory per lane made 4-rank ring all-reduces on 2 cores
        /// faster (medians of 6 alternating runs: 1 MiB 312 µs against 394, 4 MiB 1.89 ms against
        /// 2.15, 64 MiB 30.5 ms against 33.0), while 2 ranks with a core each stay faster with 8
        /// (32 MiB 3.9–4.4 ms against 4.3–5.0).
        static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment, ranksOnHost: Int) -> Geometry {
            var geometry = Geometry()
            if oversubscribed(ranksOnHost: ranksOnHost) { geometry.slots = 4 }
            if let slots = env["FLEET_SHM_SLOTS"].flatMap(Int.init), slots >= 1 { geometry.slots = slots }
            if let bytes = env["FLEET_SHM_SLOT_BYTES"].flatMap(Int.init), bytes >= 64 { geometry.slotBytes = bytes / 64 * 64 }
            if let stores = env["FLEET_SHM_STORES"].flatMap({ Stores(rawValue: $0.lowercased()) }) { geometry.stores = stores }
            return geometry
        }
    }

    /// More ranks on this host than it has cores: waiting ranks yield, and lanes are shallower.
    static func oversubscribed(ranksOnHost: Int) -> Bool { ranksOnHost > WorldSetup.usableCores }

    /// The handshake's tag, outside collective tags (bits 0–29) and user tags' usual range.
    static let setupTag = Int32.max

    /// Sets up lanes to every rank whose `hosts` entry equals this rank's, talking through
    /// `transport` (every rank of the world must call this at the same point). `job` must be
    /// the same on every rank and differ between jobs. Returns nil when no lane could be set up;
    /// a pair of ranks that fails to (no /dev/shm, no room) keeps talking through the transport.
    static func connect(_ transport: Transport, hosts: [String], job: String, geometry: Geometry? = nil) throws -> SharedMemoryLanes? {
        let rank = transport.rank
        guard hosts.count == transport.worldSize, !hosts[rank].isEmpty else { return nil }
        let local = hosts.indices.filter { hosts[$0] == hosts[rank] }
        let peers = local.filter { $0 != rank }
        guard !peers.isEmpty else { return nil }
        // Cores are the machine's: test hosts (namespaces of one machine) share them.
        let onMachine = Rendezvous.ranksOnMachine(of: rank, hosts: hosts)
        let geometry = geometry ?? .fromEnvironment(ranksOnHost: onMachine)
        let size = controlBytes + local.count * laneBytes(geometry)
        func name(_ owner: Int) -> String { "/fleet-\(job)-\(owner)" }

        // Round 1: each rank creates its segment and tells its local peers whether it could.
        let segment = create(name(rank), bytes: size)
        let created = try exchange(transport, peers: peers, status: segment != nil)
        // Round 2: each maps the segments of the peers that made one, and says which it mapped.
        var mapped: [Int: UnsafeMutableRawPointer] = [:]
        if segment != nil {
            for peer in peers where created[peer] == true { mapped[peer] = open(name(peer), bytes: size) }
        }
        let theyMapped = try exchangePerPeer(transport, peers: peers) { mapped[$0] != nil }
        // Everyone who will ever open this rank's segment has; the name can go.
        shm_unlink(name(rank))
        guard let segment else { return nil }
        let lanes = SharedMemoryLanes(rank: rank, worldSize: transport.worldSize, localRanks: local, ranksOnMachine: onMachine, geometry: geometry,
                                      segment: segment, segmentBytes: size)
        for (peer, address) in mapped {
            if theyMapped[peer] == true {
                lanes.adopt(peer, segment: address)
            } else {
                munmap(address, size)
            }
        }
        return lanes.served.isEmpty ? nil : lanes
    }

    private static func create(_ name: String, bytes: Int) -> UnsafeMutableRawPointer? {
        shm_unlink(name)
        let fd = fleet_shm_open(name, 1)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // Reserve the memory now: a full /dev/shm must fail here, not as SIGBUS on first touch.
        guard ftruncate(fd, off_t(bytes)) == 0, posix_fallocate(fd, 0, off_t(bytes)) == 0 else {
            shm_unlink(name)
            return nil
        }
        return map(fd, bytes: bytes)
    }

    private static func open(_ name: String, bytes: Int) -> UnsafeMutableRawPointer? {
        let fd = fleet_shm_open(name, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return map(fd, bytes: bytes)
    }

    private static func map(_ fd: Int32, bytes: Int) -> UnsafeMutableRawPointer? {
        // Populated up front: a page mapped on first touch makes that slot's copy look slow.
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)
        return address == MAP_FAILED ? nil : address
    }

    /// Sends one status byte to every peer and returns theirs.
    private static func exchange(_ transport: Transport, peers: [Int], status: Bool) throws -> [Int: Bool] {
        try exchangePerPeer(transport, peers: peers) { _ in status }
    }

    private static func exchangePerPeer(_ transport: Transport, peers: [Int], status: (Int) -> Bool) throws -> [Int: Bool] {
        var outgoing = peers.map { status($0) ? UInt8(1) : 0 }
        var incoming = [UInt8](repeating: 0, count: peers.count)
        var requests: [Request] = []
        try outgoing.withUnsafeMutableBytes { out in
            try incoming.withUnsafeMutableBytes { into in
                for (index, peer) in peers.enumerated() {
                    requests.append(try transport.irecv(into: UnsafeMutableRawBufferPointer(rebasing: into[index..<(index + 1)]),
                                                        from: peer, tag: setupTag))
                    requests.append(try transport.isend(UnsafeRawBufferPointer(rebasing: out[index..<(index + 1)]),
                                                        to: peer, tag: setupTag))
                }
                try transport.wait(requests, operation: "setting up shared memory with the ranks on this host")
            }
        }
        return Dictionary(uniqueKeysWithValues: zip(peers, incoming.map { $0 != 0 }))
    }
}
