import CZMQ
import Foundation

/// A job's CURVE key pair: every socket of the job's ZeroMQ ranks (inboxes, outboxes, the
/// coordinator) encrypts and authenticates with it, and each rank's ZAP handler admits only
/// peers that present it — so a process that can reach a rank's port but was not handed the
/// key cannot join the job, inject messages or replay a handshake. The launcher makes one per
/// job and hands the secret to its workers out of band (`FLEET_JOB_KEY`: the environment of a
/// local worker, the standard input of a remote one), never on a command line.
public struct JobKey: Sendable, Equatable {
    /// Z85 text, 40 characters each.
    public let publicKey: String
    public let secretKey: String

    /// The environment variable that carries the secret key to a worker.
    public static let variable = "FLEET_JOB_KEY"

    /// A fresh key pair from libzmq's CURVE (libsodium's randomness).
    public static func generate() throws -> JobKey {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else {
            throw TransportError.unsupported("this libzmq has no CURVE security (zmq_curve_keypair failed): install a libzmq built with libsodium")
        }
        return JobKey(publicKey: String(cString: pub), secretKey: String(cString: sec))
    }

    /// The pair of a secret key (its public half derived from it).
    public init(secret: String) throws {
        var pub = [CChar](repeating: 0, count: 41)
        guard secret.utf8.count == 40, zmq_curve_public(&pub, secret) == 0 else {
            throw TransportError.unsupported("\(Self.variable) must be a 40-character Z85 CURVE secret key, as fleet's launcher makes one")
        }
        self.init(publicKey: String(cString: pub), secretKey: secret)
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The key `FLEET_JOB_KEY` holds, if any (a malformed one is an error, not ignored).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> JobKey? {
        guard let secret = environment[variable], !secret.isEmpty else { return nil }
        return try JobKey(secret: secret)
    }

    /// The public key as the 32 bytes a ZAP request carries.
    var publicBytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 32)
        _ = zmq_z85_decode(&bytes, publicKey)
        return bytes
    }

    /// Makes `socket` (one that binds) a CURVE server of this job.
    func serve(_ socket: UnsafeMutableRawPointer) throws {
        try ZMQTransport.setOption(socket, ZMQ_CURVE_SERVER, 1)
        try Self.set(socket, ZMQ_CURVE_SECRETKEY, secretKey)
        // Every connection goes through the ZAP handler, which must then be there.
        try Self.set(socket, ZMQ_ZAP_DOMAIN, "fleet")
    }

    /// Makes `socket` (one that connects) a CURVE client of this job.
    func join(_ socket: UnsafeMutableRawPointer) throws {
        try Self.set(socket, ZMQ_CURVE_SERVERKEY, publicKey)
        try Self.set(socket, ZMQ_CURVE_PUBLICKEY, publicKey)
        try Self.set(socket, ZMQ_CURVE_SECRETKEY, secretKey)
    }

    private static func set(_ socket: UnsafeMutableRawPointer, _ option: Int32, _ text: String) throws {
        // Z85 keys go in as NUL-terminated text (41 bytes); the domain as plain bytes.
        let bytes = Array(text.utf8) + (option == ZMQ_ZAP_DOMAIN ? [] : [0])
        guard zmq_setsockopt(socket, option, bytes, bytes.count) == 0 else { throw ZMQTransport.lastError("setting CURVE option \(option)") }
    }
}

/// ZeroMQ's authentication hook (ZAP, RFC 27) for one context: a thread answers every
/// connection attempt on the context's CURVE sockets, admitting the job's key and refusing —
/// and reporting — anything else. It ends when the context is terminated.
final class ZAPHandler: @unchecked Sendable {   // `lock` guards `refusals`
    private let lock = NSLock()
    private var refusals: [String] = []
    /// Called with each refusal's description (by default: one line on stderr).
    let report: @Sendable (String) -> Void

    /// Binds the handler in `context` (before any CURVE socket binds) and starts answering.
    init(context: UnsafeMutableRawPointer, key: JobKey, rank: Int, report: @escaping @Sendable (String) -> Void = ZAPHandler.standardError) throws {
        self.report = report
        guard let socket = zmq_socket(context, ZMQ_REP) else { throw ZMQTransport.lastError("zmq_socket(REP) for ZAP") }
        guard zmq_bind(socket, "inproc://zeromq.zap.01") == 0 else {
            zmq_close(socket)
            throw ZMQTransport.lastError("binding the ZAP handler")
        }
        let expected = key.publicBytes
        let box = SocketBox(socket)
        let thread = Thread { [self] in
            self.serve(box.socket, expected: expected, rank: rank)
            zmq_close(box.socket)
        }
        thread.name = "fleet-zap"
        thread.start()
    }

    /// How many connection attempts were refused, and why.
    var refused: [String] {
        lock.lock(); defer { lock.unlock() }
        return refusals
    }

    static let standardError: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data(("fleet: " + line + "\n").utf8)) }

    private func serve(_ socket: UnsafeMutableRawPointer, expected: [UInt8], rank: Int) {
        while true {
            // version, request id, domain, address, identity, mechanism, credentials…
            var frames: [[UInt8]] = []
            repeat {
                var message = zmq_msg_t()
                zmq_msg_init(&message)
                guard zmq_msg_recv(&message, socket, 0) >= 0 else { zmq_msg_close(&message); return }   // ETERM: the context ends
                frames.append(Array(UnsafeRawBufferPointer(start: zmq_msg_data(&message), count: zmq_msg_size(&message))))
                let more = zmq_msg_more(&message) != 0
                zmq_msg_close(&message)
                if !more { break }
            } while true
            guard frames.count >= 6 else { continue }
            let mechanism = String(decoding: frames[5], as: UTF8.self), address = String(decoding: frames[3], as: UTF8.self)
            let admitted = mechanism == "CURVE" && frames.count >= 7 && frames[6] == expected
            if !admitted {
                let why = mechanism == "CURVE" ? "a key that is not this job's" : "no CURVE authentication (mechanism \(mechanism))"
                let line = "rank \(rank) refused a connection from \(address.isEmpty ? "an unknown address" : address): \(why)"
                lock.lock(); refusals.append(line); lock.unlock()
                report(line)
            }
            let reply: [[UInt8]] = [Array("1.0".utf8), frames[1], Array((admitted ? "200" : "400").utf8),
                                    Array((admitted ? "OK" : "not a member of this job").utf8), [], []]
            for (index, frame) in reply.enumerated() {
                _ = zmq_send(socket, frame, frame.count, index < reply.count - 1 ? ZMQ_SNDMORE : 0)
            }
        }
    }

    /// A socket handed to the handler's thread (only that thread uses it afterwards).
    private struct SocketBox: @unchecked Sendable {
        let socket: UnsafeMutableRawPointer
        init(_ socket: UnsafeMutableRawPointer) { self.socket = socket }
    }
}
