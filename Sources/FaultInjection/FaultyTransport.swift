import Collectives
import Foundation

/// A `Transport` decorator around any backend: it injects the plan's message faults
/// (delay, drop, corrupt) on this rank's sends, keeps a flight recorder of the last
/// operations so a failure report can say what this rank was doing and who it waited for,
/// and with `checksums` follows every message with its CRC32C and a sequence number per
/// (peer, tag), which the receiver checks (every rank must use the same setting: the check
/// is a second message on the same tag, and messages between two ranks on one tag keep
/// their order), so corrupted, duplicated and out-of-order messages are caught.
public final class FaultyTransport: TransportDecorator {
    public let inner: Transport
    public let faults: [Fault]
    /// The current training step (1-based), set by the trainer.
    public var step = 0
    public let recorder: FlightRecorder
    /// Faults that acted, with the step: for the run's fault report.
    public private(set) var fired: [(fault: Fault, step: Int)] = []
    /// Payloads this decorator sends in place of the caller's (corrupted or duplicated copies).
    private var ownedCopies: [UnsafeMutableRawBufferPointer] = []
    private var actedThisStep: Set<Int> = []
    /// Messages sent to and posted from each (peer, tag), for the sequence check.
    private var sentCount: [Int64: UInt32] = [:]
    private var postedCount: [Int64: UInt32] = [:]
    private func channel(_ peer: Int, _ tag: Int32) -> Int64 { Int64(peer) << 32 | Int64(UInt32(bitPattern: tag)) }
    private var lastStep = 0

    public let checksums: Bool

    /// The wrapped requests of one outer request, and the checksum's storage.
    private final class Pair {
        let data: Request
        var checksum: Request?
        /// CRC32C then the sequence number, 4 bytes each.
        let crc: UnsafeMutableRawBufferPointer
        var received: UnsafeMutableRawBufferPointer?
        var expectedSequence: UInt32 = 0

        init(data: Request) {
            self.data = data
            crc = .allocate(byteCount: 8, alignment: 4)
        }

        deinit { crc.deallocate() }
    }

    public init(_ inner: Transport, faults: [Fault], checksums: Bool = false, recorder: FlightRecorder = FlightRecorder()) {
        self.inner = inner
        self.checksums = checksums
        self.faults = faults.filter { $0.rank == inner.rank && [.delay, .drop, .corrupt, .duplicate].contains($0.kind) }
        self.recorder = recorder
    }

    deinit { for copy in ownedCopies { copy.deallocate() } }

    private func acting(_ kind: Fault.Kind) -> (Int, Fault)? {
        if step != lastStep { actedThisStep = []; lastStep = step }
        guard let index = faults.firstIndex(where: { $0.kind == kind && $0.steps.contains(step) }) else { return nil }
        return (index, faults[index])
    }

    public func isend(_ data: UnsafeRawBufferPointer, to peer: Int, tag: Int32) throws -> Request {
        recorder.record("send \(data.count) B to rank \(peer), tag \(tag), step \(step)")
        if let (_, fault) = acting(.delay) {
            if !fired.contains(where: { $0.fault == fault && $0.step == step }) { fired.append((fault, step)) }
            usleep(useconds_t(fault.milliseconds * 1000))
        }
        if let (index, fault) = acting(.drop), !actedThisStep.contains(index) {
            actedThisStep.insert(index)
            fired.append((fault, step))
            recorder.record("(injected) dropped that message")
            let request = Request(kind: .send, peer: peer, tag: tag, byteCount: data.count)
            request.markComplete()
            return request
        }
        if let (index, fault) = acting(.corrupt), !actedThisStep.contains(index), data.count > 0 {
            actedThisStep.insert(index)
            fired.append((fault, step))
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 64)
            copy.copyMemory(from: data)
            // Flip the top exponent bit of a float in the middle: the kind of error a bad link leaves.
            let at = (data.count / 2) & ~3
            copy[min(at + 3, data.count - 1)] ^= 0x40
            ownedCopies.append(copy)
            recorder.record("(injected) flipped a bit of that message")
            return try send(UnsafeRawBufferPointer(copy), checksumOf: data, to: peer, tag: tag)
        }
        if let (index, fault) = acting(.duplicate), !actedThisStep.contains(index) {
            actedThisStep.insert(index)
            fired.append((fault, step))
            recorder.record("(injected) sent that message twice")
            let first = try send(data, checksumOf: data, to: peer, tag: tag)
            // The copy outlives the caller's buffer, which may change once `first` completes.
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 64)
            if data.count > 0 { copy.copyMemory(from: data) }
            ownedCopies.append(copy)
            let again = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<data.count])
            duplicates.append(try send(again, checksumOf: again, to: peer, tag: tag, sequence: .some(nil)))
            return first
        }
        return try send(data, checksumOf: data, to: peer, tag: tag)
    }

    /// Sends of injected duplicates: completed in the background as the transport progresses.
    private var duplicates: [Request] = []

    private func nextSequence(_ peer: Int, _ tag: Int32) -> UInt32 {
        let key = channel(peer, tag), value = sentCount[key, default: 0]
        sentCount[key] = value &+ 1
        return value
    }

    /// Sends `payload` (and, with checksums, the CRC32C of `original` with the sequence
    /// number; `sequence: nil` repeats the previous one, as a duplicate would).
    private func send(_ payload: UnsafeRawBufferPointer, checksumOf original: UnsafeRawBufferPointer, to peer: Int, tag: Int32,
                      sequence: UInt32?? = .none) throws -> Request {
        let pair = Pair(data: try inner.isend(payload, to: peer, tag: tag))
        if checksums {
            let number: UInt32
            switch sequence {
            case .none: number = nextSequence(peer, tag)
            case .some(.some(let given)): number = given
            case .some(.none): number = sentCount[channel(peer, tag), default: 1] &- 1
            }
            pair.crc.storeBytes(of: CRC32C.checksum(original), as: UInt32.self)
            pair.crc.storeBytes(of: number, toByteOffset: 4, as: UInt32.self)
            pair.checksum = try inner.isend(UnsafeRawBufferPointer(pair.crc), to: peer, tag: tag)
        }
        return wrap(pair)
    }

    public func irecv(into buffer: UnsafeMutableRawBufferPointer, from peer: Int, tag: Int32) throws -> Request {
        recorder.record("receive \(buffer.count) B from rank \(peer), tag \(tag), step \(step)")
        let pair = Pair(data: try inner.irecv(into: buffer, from: peer, tag: tag))
        if checksums {
            pair.received = buffer
            let key = channel(peer, tag)
            pair.expectedSequence = postedCount[key, default: 0]
            postedCount[key] = pair.expectedSequence &+ 1
            pair.checksum = try inner.irecv(into: pair.crc, from: peer, tag: tag)
        }
        return wrap(pair)
    }

    private func wrap(_ pair: Pair) -> Request {
        let outer = Request(kind: pair.data.kind, peer: pair.data.peer, tag: pair.data.tag, byteCount: pair.data.byteCount)
        outer.decoration = pair
        return outer
    }

    public func test(_ request: Request) throws -> Bool {
        if request.isComplete { return true }
        guard let pair = request.decoration as? Pair else { return request.isComplete }
        guard try inner.test(pair.data) else { return false }
        if let checksum = pair.checksum {
            guard try inner.test(checksum) else { return false }
            if let received = pair.received {
                let expected = pair.crc.load(as: UInt32.self), found = CRC32C.checksum(UnsafeRawBufferPointer(received))
                if expected != found {
                    recorder.record("message from rank \(request.peer), tag \(request.tag) failed its checksum")
                    throw TransportError.corruptMessage(from: request.peer, tag: request.tag, bytes: received.count, expected: expected, found: found)
                }
                let sequence = pair.crc.load(fromByteOffset: 4, as: UInt32.self)
                if sequence != pair.expectedSequence {
                    recorder.record("message from rank \(request.peer), tag \(request.tag) arrived out of order")
                    throw TransportError.messageOutOfOrder(from: request.peer, tag: request.tag, expected: pair.expectedSequence, found: sequence)
                }
            }
        }
        request.markComplete()
        request.decoration = nil
        return true
    }

    public func progress(maxWait: Duration) throws {
        try inner.progress(maxWait: maxWait)
        duplicates = try duplicates.filter { try !test($0) }
    }

    public func shutdown() { inner.shutdown() }
}

/// The last operations of one rank, kept in a ring: dumped on failure, so a hang report
/// shows what each rank was doing when it stopped.
public final class FlightRecorder: @unchecked Sendable {   // a lock guards the ring
    private var entries: [String]
    private var next = 0, count = 0
    private let start = ContinuousClock.now
    private let lock = NSLock()

    public init(capacity: Int = 32) { entries = Array(repeating: "", count: capacity) }

    public func record(_ what: @autoclosure () -> String) {
        lock.lock()
        defer { lock.unlock() }
        let elapsed = ContinuousClock.now - start
        let (s, atto) = elapsed.components
        entries[next] = String(format: "%9.3f s  ", Double(s) + Double(atto) * 1e-18) + what()
        next = (next + 1) % entries.count
        count = min(count + 1, entries.count)
    }

    /// The recorded operations, oldest first.
    public var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return (0..<count).map { entries[(next - count + $0 + entries.count) % entries.count] }
    }
}
