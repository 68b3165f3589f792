import CFleetSys
import Foundation

/// A send whose bytes the receiving rank copies straight out of this process's memory;
/// it completes when the receiver acknowledges the copy.
final class SingleCopySend {
    let request: Request
    let data: UnsafeRawBufferPointer

    init(_ request: Request, data: UnsafeRawBufferPointer) {
        self.request = request
        self.data = data
    }
}

extension ZMQTransport {
    /// Reads `into.count` bytes at `address` in process `process`; returns the bytes read, or
    /// minus the errno when the kernel refused.
    public typealias MemoryReader = @Sendable (_ process: Int32, _ into: UnsafeMutableRawBufferPointer, _ address: UInt64) -> Int

    /// The kernel's cross-memory attach (`process_vm_readv`).
    public static let crossMemoryAttach: MemoryReader = { process, buffer, address in
        let copied = fleet_read_process_memory(process, buffer.baseAddress, buffer.count, address)
        return copied >= 0 ? copied : -Int(errno)
    }

    /// The smallest message that takes the single-copy path: `FLEET_ZMQ_SINGLE_COPY` in
    /// bytes, or `off`; by default 64 KiB: from there a descriptor round trip costs less than
    /// the second copy it saves (2-rank ring all-reduce over 2 cores, 128 KiB–2 MiB: 1.1–2.4×
    /// faster than over the socket; at 64 KiB messages neither wins beyond the noise).
    static func singleCopyThreshold(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        guard let value = env["FLEET_ZMQ_SINGLE_COPY"]?.lowercased() else { return 64 << 10 }
        if ["off", "no", "false", "none"].contains(value) { return .max }
        return Int(value).map { max(1, $0) } ?? 64 << 10
    }

    /// Single copy to every peer that runs on this host (same kernel, same process ids).
    func enableSingleCopy(hosts: [String]) {
        singleCopyPeers = hosts.indices.map { $0 != rank && !hosts[$0].isEmpty && hosts[$0] == hosts[rank] }
        if singleCopyPeers.contains(true) { _ = fleet_allow_memory_reads_by_siblings() }
        if singleCopyBytes == .max || singleCopyPeers.indices.contains(where: { $0 != rank && !singleCopyPeers[$0] }) {
            Self.keepLargeAllocationsOnTheHeap()
        }
        matcher.pull = { [unowned self] descriptor, buffer in try self.pull(descriptor, into: buffer) }
        matcher.acknowledge = { [unowned self] descriptor in try self.answer(descriptor, kind: WireHeader.acknowledged) }
    }

    /// Sends where `data` lies instead of its bytes; the request completes on the receiver's answer.
    func sendDescriptor(_ data: UnsafeRawBufferPointer, to peer: Int, request: Request) throws {
        let id = nextSingleCopyID
        nextSingleCopyID += 1
        var header = WireHeader(source: Int32(rank), tag: request.tag, total: UInt64(data.count), kind: WireHeader.descriptor,
                                process: getpid(), address: UInt64(UInt(bitPattern: data.baseAddress)), id: id)
        let send = SingleCopySend(request, data: data)
        request.handle = send
        singleCopySends[id] = send
        try withUnsafeBytes(of: &header) { try sendFrame(peer, $0, more: false) }
    }

    /// The receiver copied a descriptor's bytes (the send is complete) or could not (they go
    /// over the socket, and so does everything after to that peer).
    func singleCopyAnswered(_ answer: WireHeader) throws {
        let peer = Int(answer.source)
        guard let send = singleCopySends.removeValue(forKey: answer.id) else {
            throw TransportError.backend("rank \(peer) answered a single-copy send (id \(answer.id)) that rank \(rank) never made")
        }
        if answer.kind == WireHeader.acknowledged {
            send.request.isComplete = true
            send.request.handle = nil
            return
        }
        singleCopyPeers[peer] = false
        Self.keepLargeAllocationsOnTheHeap()
        try sendBytes(send.data, to: peer, request: send.request,
                      header: WireHeader(source: Int32(rank), tag: send.request.tag, total: UInt64(send.data.count),
                                         kind: WireHeader.fallbackData, id: answer.id))
    }

    /// Receiver side: copies a descriptor's bytes into `buffer` and acknowledges them. Returns
    /// false when the kernel refused (the sender is told and sends the bytes instead).
    func pull(_ descriptor: WireHeader, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        var done = 0
        while done < buffer.count {
            let copied = singleCopyReader(descriptor.process, UnsafeMutableRawBufferPointer(rebasing: buffer[done...]),
                                          descriptor.address + UInt64(done))
            if copied > 0 { done += copied; continue }
            if copied == -Int(EINTR) { continue }
            if copied == -Int(ESRCH) {
                throw TransportError.peerDied(rank: Int(descriptor.source), operation: "receive (tag \(descriptor.tag))")
            }
            // EPERM (ptrace forbidden here), ENOSYS (no cross-memory attach), or a short read.
            Self.keepLargeAllocationsOnTheHeap()
            try answer(descriptor, kind: WireHeader.refused)
            return false
        }
        try answer(descriptor, kind: WireHeader.acknowledged)
        return true
    }

    func answer(_ descriptor: WireHeader, kind: UInt32) throws {
        var header = WireHeader(source: Int32(rank), tag: descriptor.tag, total: descriptor.total, kind: kind, id: descriptor.id)
        try withUnsafeBytes(of: &header) { try sendFrame(Int(descriptor.source), $0, more: false) }
    }
}
