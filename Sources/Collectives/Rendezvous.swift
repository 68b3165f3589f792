import CZMQ
import Foundation

/// Exchanges inbox endpoints: every rank tells rank 0 (the coordinator) where it listens
/// and which host (kernel and process namespace) it runs on, and rank 0 answers each with
/// the full table.
public enum Rendezvous {
    /// One rank's entry: where its inbox listens, and `host`, equal for ranks that can read
    /// each other's memory directly (empty when unknown).
    struct Entry: Equatable {
        var endpoint: String
        var host: String

        var line: String { host.isEmpty ? endpoint : "\(endpoint) \(host)" }

        init(endpoint: String, host: String) {
            self.endpoint = endpoint
            self.host = host
        }

        init(line: Substring) {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            endpoint = parts.first ?? ""
            host = parts.count > 1 ? parts[1] : ""
        }
    }

    /// This process's host: the kernel's boot id, its PID namespace (only processes under one
    /// kernel that see each other's process ids can attach to each other's memory) and its
    /// network namespace (a container or test host of its own: its ranks reach the others
    /// over the network, as on separate machines — scripts/test-hosts.sh relies on it).
    static let localHost: String = {
        guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
              let namespace = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid"),
              let network = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net") else { return "" }
        // The hostname goes first, for messages (`name(ofHost:)`); the rest tells hosts apart.
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let key = String(cString: name).replacingOccurrences(of: "@", with: "_") + "@" + boot.trimmingCharacters(in: .whitespacesAndNewlines) + "/" + namespace + "/" + network
        return key.contains(where: { $0 == " " || $0 == "\n" }) ? "" : key
    }()

    /// The machine a host identity runs on: its kernel's boot id (test hosts, namespaces of one
    /// machine, are hosts of their own but share its cores).
    public static func machine(ofHost identity: String) -> String {
        guard let at = identity.firstIndex(of: "@") else { return identity }
        return String(identity[identity.index(after: at)...].prefix { $0 != "/" })
    }

    /// How many of `hosts` (every rank's identity) run on the machine of `hosts[rank]`.
    static func ranksOnMachine(of rank: Int, hosts: [String]) -> Int {
        let mine = machine(ofHost: hosts[rank])
        return hosts.filter { machine(ofHost: $0) == mine }.count
    }

    /// The hostname part of a host identity (`localHost`).
    static func name(ofHost identity: String) -> String {
        identity.split(separator: "@", maxSplits: 1).first.map(String.init) ?? identity
    }

    static func exchange(context: UnsafeMutableRawPointer, configuration: ZMQTransport.Configuration,
                         entry: Entry) throws -> [Entry] {
        if configuration.worldSize == 1 { return [entry] }
        return configuration.rank == 0
            ? try coordinate(context: context, configuration: configuration, entry: entry)
            : try register(context: context, configuration: configuration, entry: entry)
    }

    private static func coordinate(context: UnsafeMutableRawPointer, configuration: ZMQTransport.Configuration,
                                   entry: Entry) throws -> [Entry] {
        guard let router = zmq_socket(context, ZMQ_ROUTER) else { throw ZMQTransport.lastError("zmq_socket(ROUTER)") }
        defer {
            zmq_close(router)
            ZMQTransport.removeSocketFile(configuration.coordinator)
        }
        try ZMQTransport.setOption(router, ZMQ_LINGER, 2000)
        try configuration.key?.serve(router)
        guard zmq_bind(router, configuration.coordinator) == 0 else {
            throw TransportError.rendezvousFailed("rank 0 could not bind the coordinator address \(configuration.coordinator): "
                + String(cString: zmq_strerror(zmq_errno())))
        }
        var table = Array(repeating: Entry(endpoint: "", host: ""), count: configuration.worldSize)
        table[0] = entry
        var identities: [Int: [UInt8]] = [:]
        let deadline = ContinuousClock.now.advanced(by: configuration.rendezvousTimeout)
        while identities.count < configuration.worldSize - 1 {
            guard try waitReadable(router, until: deadline) else {
                let missing = (1..<configuration.worldSize).filter { identities[$0] == nil }
                throw TransportError.rendezvousFailed("ranks \(missing) never registered with the coordinator within "
                    + "\(configuration.rendezvousTimeout.seconds) s")
            }
            let identity = try receiveFrame(router)
            let payload = String(decoding: try receiveFrame(router), as: UTF8.self)
            let parts = payload.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, let peer = Int(parts[0]), (1..<configuration.worldSize).contains(peer) else {
                throw TransportError.rendezvousFailed("unexpected registration '\(payload)'")
            }
            guard identities[peer] == nil else {
                throw TransportError.rendezvousFailed("two processes registered as rank \(peer)")
            }
            identities[peer] = identity
            table[peer] = Entry(line: Substring(parts[1]))
        }
        let reply = Array(table.map(\.line).joined(separator: "\n").utf8)
        for (_, identity) in identities {
            try sendFrame(router, identity, more: true)
            try sendFrame(router, reply, more: false)
        }
        return table
    }

    private static func register(context: UnsafeMutableRawPointer, configuration: ZMQTransport.Configuration,
                                 entry: Entry) throws -> [Entry] {
        guard let dealer = zmq_socket(context, ZMQ_DEALER) else { throw ZMQTransport.lastError("zmq_socket(DEALER)") }
        defer { zmq_close(dealer) }
        try ZMQTransport.setOption(dealer, ZMQ_LINGER, 0)
        try configuration.key?.join(dealer)
        guard zmq_connect(dealer, configuration.coordinator) == 0 else {
            throw TransportError.rendezvousFailed("cannot connect to coordinator \(configuration.coordinator)")
        }
        try sendFrame(dealer, Array("\(configuration.rank) \(entry.line)".utf8), more: false)
        let deadline = ContinuousClock.now.advanced(by: configuration.rendezvousTimeout)
        guard try waitReadable(dealer, until: deadline) else {
            throw TransportError.rendezvousFailed("rank \(configuration.rank) got no answer from the coordinator at "
                + "\(configuration.coordinator) within \(configuration.rendezvousTimeout.seconds) s (is rank 0 running?)")
        }
        let table = String(decoding: try receiveFrame(dealer), as: UTF8.self).split(separator: "\n").map(Entry.init(line:))
        guard table.count == configuration.worldSize else {
            throw TransportError.rendezvousFailed("coordinator announced \(table.count) ranks, this rank expected \(configuration.worldSize)")
        }
        return table
    }

    private static func waitReadable(_ socket: UnsafeMutableRawPointer, until deadline: ContinuousClock.Instant) throws -> Bool {
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            var item = zmq_pollitem_t(socket: socket, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            let ready = zmq_poll(&item, 1, min(200, max(1, Int(remaining.seconds * 1000))))
            if ready > 0 { return true }
            if ready < 0 && zmq_errno() != EINTR { throw ZMQTransport.lastError("zmq_poll during rendezvous") }
        }
    }

    private static func receiveFrame(_ socket: UnsafeMutableRawPointer) throws -> [UInt8] {
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        guard zmq_msg_recv(&message, socket, 0) >= 0 else { throw ZMQTransport.lastError("rendezvous receive") }
        return Array(UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: zmq_msg_size(&message)))
    }

    private static func sendFrame(_ socket: UnsafeMutableRawPointer, _ bytes: [UInt8], more: Bool) throws {
        guard zmq_send(socket, bytes, bytes.count, more ? ZMQ_SNDMORE : 0) >= 0 else {
            throw ZMQTransport.lastError("rendezvous send")
        }
    }
}
