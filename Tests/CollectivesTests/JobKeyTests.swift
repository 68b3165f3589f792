import CZMQ
import Foundation
import XCTest
import Collectives

/// Only the job's own ranks get in: ZeroMQ ranks that share a job key (CURVE) talk; a stray
/// connection with another key, one without CURVE, raw bytes on the port and a replayed
/// handshake are refused without disturbing the job.
final class JobKeyTests: XCTestCase {
    private func twoRanks(key: JobKey?, _ body: @escaping @Sendable (ZMQTransport) throws -> Void) throws {
        let coordinator = "tcp://127.0.0.1:\(Int.random(in: 40000...48000))"
        let lock = NSLock()
        nonisolated(unsafe) var errors: [Error] = []
        let group = DispatchGroup()
        for rank in 0..<2 {
            group.enter()
            let thread = Thread {
                do {
                    var configuration = ZMQTransport.Configuration(rank: rank, worldSize: 2, coordinator: coordinator, bind: "tcp://127.0.0.1:*")
                    configuration.rendezvousTimeout = .seconds(20)
                    configuration.key = key
                    let transport = try ZMQTransport(configuration)
                    defer { transport.shutdown() }
                    transport.timeout = .seconds(20)
                    try body(transport)
                } catch {
                    lock.lock(); errors.append(error); lock.unlock()
                }
                group.leave()
            }
            thread.start()
        }
        group.wait()
        if let error = errors.first { throw error }
    }

    func testKeysAreMadeAndReadBack() throws {
        let key = try JobKey.generate()
        XCTAssertEqual(key.secretKey.count, 40)
        XCTAssertEqual(try JobKey(secret: key.secretKey), key)
        XCTAssertNotEqual(try JobKey.generate(), key)
        XCTAssertThrowsError(try JobKey.fromEnvironment([JobKey.variable: "short"]))
        XCTAssertNil(try JobKey.fromEnvironment([:]))
    }

    func testOnlyTheJobsKeyGetsIn() throws {
        let key = try JobKey.generate()
        try twoRanks(key: key) { transport in
            let world = Communicator(world: transport)
            if transport.rank == 0 {
                let target = transport.endpoints[1]
                let port = UInt16(target.split(separator: ":").last!)!
                // Another key that knows the job's public key; no CURVE at all; raw bytes; a replayed handshake.
                let stranger = try JobKey.generate()
                let context = zmq_ctx_new()!
                defer { zmq_ctx_term(context) }
                func push(_ secure: Bool) -> UnsafeMutableRawPointer {
                    let socket = zmq_socket(context, ZMQ_PUSH)!
                    var linger: Int32 = 0
                    zmq_setsockopt(socket, ZMQ_LINGER, &linger, 4)
                    if secure {
                        for (option, text) in [(ZMQ_CURVE_SERVERKEY, key.publicKey), (ZMQ_CURVE_PUBLICKEY, stranger.publicKey), (ZMQ_CURVE_SECRETKEY, stranger.secretKey)] {
                            let bytes = Array(text.utf8) + [0]
                            zmq_setsockopt(socket, option, bytes, bytes.count)
                        }
                    }
                    zmq_connect(socket, target)
                    zmq_send(socket, "intruder", 8, ZMQ_DONTWAIT)
                    return socket
                }
                let strays = [push(true), push(false)]
                Self.rawConnection(port: port, send: Array(repeating: 0xAB, count: 4096))
                Self.rawConnection(port: port, send: try Self.recordedHandshake(key: key, context: context))
                usleep(500_000)
                strays.forEach { zmq_close($0) }
            }
            // The job goes on: an all-reduce after it all, and rank 1 names the stranger.
            var values: [Float] = [Float(transport.rank + 1)]
            try world.allReduce(&values)
            XCTAssertEqual(values, [3])
            try world.barrier()
            if transport.rank == 1 {
                var refused = transport.refusedConnections
                for _ in 0..<40 where refused.isEmpty { usleep(50_000); refused = transport.refusedConnections }
                XCTAssertTrue(refused.contains { $0.contains("rank 1 refused a connection from 127.0.0.1") && $0.contains("a key that is not this job's") }, "\(refused)")
            }
        }
    }

    /// Opens a TCP connection to 127.0.0.1:`port`, writes `send`, reads what comes back for a while, closes.
    static func rawConnection(port: UInt16, send bytes: [UInt8]) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { return }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = read(fd, &buffer, buffer.count)
    }

    /// What a genuine client of the job sends to open a connection (its ZMTP greeting and CURVE
    /// HELLO), recorded by a listener that answers with a server's greeting: the bytes an
    /// eavesdropper could replay.
    static func recordedHandshake(key: JobKey, context: UnsafeMutableRawPointer) throws -> [UInt8] {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 } }
        listen(listener, 1)
        let port = UInt16(bigEndian: address.sin_port)
        let client = zmq_socket(context, ZMQ_PUSH)!
        defer { zmq_close(client) }
        var linger: Int32 = 0
        zmq_setsockopt(client, ZMQ_LINGER, &linger, 4)
        for (option, text) in [(ZMQ_CURVE_SERVERKEY, key.publicKey), (ZMQ_CURVE_PUBLICKEY, key.publicKey), (ZMQ_CURVE_SECRETKEY, key.secretKey)] {
            let bytes = Array(text.utf8) + [0]
            zmq_setsockopt(client, option, bytes, bytes.count)
        }
        zmq_connect(client, "tcp://127.0.0.1:\(port)")
        let fd = accept(listener, nil, nil)
        defer { close(fd) }
        // ZMTP 3.0 greeting of a CURVE server: signature, version, mechanism, as-server, filler.
        var greeting: [UInt8] = [0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 0] + Array("CURVE".utf8) + Array(repeating: 0, count: 15) + [1] + Array(repeating: 0, count: 31)
        _ = write(fd, &greeting, greeting.count)
        var timeout = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var recorded: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            recorded += buffer.prefix(n)
        }
        XCTAssertGreaterThanOrEqual(recorded.count, 64 + 200, "a greeting and a HELLO were recorded")
        return recorded
    }
}
