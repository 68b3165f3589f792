import Foundation

/// Counts the chunks of one zero-copy send that ZeroMQ has not released yet (released from
/// its I/O thread), waking the owning transport's waits on each release.
final class ZeroCopyCompletion: @unchecked Sendable {   // a lock guards the count
    private let lock = NSLock()
    private var outstanding: Int
    private let wakeup: WakeupPipe

    init(chunks: Int, wakeup: WakeupPipe) {
        outstanding = chunks
        self.wakeup = wakeup
    }

    func chunkReleased() {
        lock.lock(); outstanding -= 1; lock.unlock()
        wakeup.signal()
    }

    var isDone: Bool { lock.lock(); defer { lock.unlock() }; return outstanding == 0 }
}

/// A non-blocking pipe that ZeroMQ's I/O thread writes to so that a waiting rank wakes up.
final class WakeupPipe: @unchecked Sendable {   // two file descriptors, set once; writes to a pipe are atomic
    let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }
}

/// First frame of every ZeroMQ message: who sent it, for which tag, and what it is — a chunk
/// of bytes (followed by a data frame: where it goes in the message), or a single-copy
/// descriptor, acknowledgement or refusal (alone).
struct WireHeader {
    var source: Int32
    var tag: Int32
    var total: UInt64
    var offset: UInt64 = 0
    var kind: UInt32 = WireHeader.data
    /// Single copy: the sender's process id and the address of its bytes.
    var process: Int32 = 0
    var address: UInt64 = 0
    /// Single copy: the id of the send a descriptor, answer or fallback chunk belongs to.
    var id: UInt64 = 0

    static let data: UInt32 = 0
    static let descriptor: UInt32 = 1
    static let acknowledged: UInt32 = 2
    static let refused: UInt32 = 3
    /// The bytes of a refused descriptor, sent over the socket instead.
    static let fallbackData: UInt32 = 4
}
