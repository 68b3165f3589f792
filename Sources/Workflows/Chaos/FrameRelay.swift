import CFleetSys
import Foundation

/// Carries Ethernet frames between two interfaces, each frame held `delay` before it leaves:
/// a link with added latency, made in user space because this kernel has no `netem`. Both
/// directions are delayed alike and keep their order. fleet's chaos puts one between a test
/// host's veth and the bridge (`scripts/test-hosts.sh detour`), so the host's network stack,
/// addresses and open connections stay as they were.
public final class FrameRelay: @unchecked Sendable {   // `lock` guards `stopping`; each thread owns its direction
    public let delay: Duration
    private let sockets: (Int32, Int32)
    private let lock = NSLock()
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    /// Frames delivered each way (a → b, b → a), read once stopped.
    public private(set) var carried = (0, 0)

    /// Opens raw sockets on interfaces `a` and `b` (root needed) and starts relaying.
    public init(between a: String, and b: String, delay: Duration) throws {
        let first = fleet_packet_socket(a)
        guard first >= 0 else { throw FleetError("cannot open a packet socket on \(a): \(String(cString: strerror(-first))) (it needs root and the interface up)") }
        let second = fleet_packet_socket(b)
        guard second >= 0 else {
            close(first)
            throw FleetError("cannot open a packet socket on \(b): \(String(cString: strerror(-second))) (it needs root and the interface up)")
        }
        sockets = (first, second)
        self.delay = delay
        for (from, to, index) in [(first, second, 0), (second, first, 1)] {
            Thread { [self] in
                let count = relay(from: from, to: to)
                lock.lock()
                if index == 0 { carried.0 = count } else { carried.1 = count }
                lock.unlock()
                finished.signal()
            }.start()
        }
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    /// Stops both directions (frames still held are dropped, as a cable pulled out drops them)
    /// and closes the sockets.
    public func stop() {
        lock.lock(); let already = stopping; stopping = true; lock.unlock()
        guard !already else { return }
        finished.wait()
        finished.wait()
        close(sockets.0)
        close(sockets.1)
    }

    /// One direction: frames read from `from` wait in arrival order until their time, then
    /// leave through `to`. Returns how many left.
    private func relay(from: Int32, to: Int32) -> Int {
        // A frame with its virtio-net header: up to 64 KiB of offloaded segments.
        let capacity = 65_536 + 64
        var held: [(due: ContinuousClock.Instant, frame: [UInt8])] = []
        var head = 0, sent = 0
        var buffer = [UInt8](repeating: 0, count: capacity)
        while !isStopping {
            let now = ContinuousClock.now
            while head < held.count && held[head].due <= now {
                // A frame the other side cannot take now is lost, as on a congested link.
                if held[head].frame.withUnsafeBytes({ send(to, $0.baseAddress, $0.count, 0) }) >= 0 { sent += 1 }
                head += 1
            }
            if head > 1024 && head * 2 > held.count {
                held.removeFirst(head)
                head = 0
            }
            // Wait for a frame, or for the next one due (at most 10 ms, to see a stop).
            var wait = 10
            if head < held.count {
                let (s, atto) = (held[head].due - now).components
                wait = max(0, min(wait, Int(s) * 1000 + Int((atto + 999_999_999_999_999) / 1_000_000_000_000_000)))
            }
            var descriptor = pollfd(fd: from, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(wait)) > 0 else { continue }
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, capacity, 0) }
                guard n > 0 else { break }
                held.append((ContinuousClock.now + delay, Array(buffer[0..<n])))
            }
        }
        return sent
    }
}
