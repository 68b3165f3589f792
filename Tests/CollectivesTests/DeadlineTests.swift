import Collectives
import Foundation
import XCTest

/// The transport's deadline on a clock the test controls: minutes of waiting checked in
/// milliseconds, and the boundary (an answer just before it, none until just after) exactly.
final class DeadlineTests: XCTestCase {
    func testASilentPeerIsNamedExactlyAtTheDeadline() throws {
        let clock = ManualTransportClock()
        let done = DispatchSemaphore(value: 0)
        let started = ContinuousClock.now
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(600), clock: clock) { transport in
            if transport.rank == 1 {
                // Alive but silent: it neither sends nor leaves until rank 0 has given up.
                done.wait()
                return
            }
            defer { done.signal() }
            var value: Float = 0
            try withUnsafeMutableBytes(of: &value) { try transport.recv(into: $0, from: 1, tag: 7) }
        }
        XCTAssertThrowsError(try results[0].get()) { error in
            guard case let TransportError.peerTimedOut(rank, operation, after) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(rank, 1)
            XCTAssertEqual(after, .seconds(600))
            XCTAssertTrue(operation.contains("receive from rank 1"), operation)
        }
        // Only rank 0 waited, in steps of at most 50 ms: the clock stopped within one step of 600 s.
        XCTAssertGreaterThanOrEqual(clock.elapsed, .seconds(600))
        XCTAssertLessThanOrEqual(clock.elapsed, .seconds(600) + .milliseconds(50))
        XCTAssertLessThan((ContinuousClock.now - started).seconds, 30, "a manual clock must not sleep through the deadline")
    }

    func testAnAnswerJustBeforeTheDeadlineArrivesAndOneJustAfterDoesNot() throws {
        XCTAssertNoThrow(try receive(answeredAt: .milliseconds(59_950), timeout: .seconds(60)))
        XCTAssertThrowsError(try receive(answeredAt: .milliseconds(60_100), timeout: .seconds(60))) { error in
            guard case TransportError.peerTimedOut(rank: 1, _, _) = error else { return XCTFail("\(error)") }
        }
    }

    /// Rank 0 waits for one float from rank 1, which sends it once the clock reads `answeredAt`.
    private func receive(answeredAt: Duration, timeout: Duration) throws {
        let fabric = LocalFabric(worldSize: 2)
        let sender = fabric.endpoint(rank: 1)
        // The send happens inside the receiver's wait, at the clock's reading: no race between threads.
        let clock = ScriptedClock(at: answeredAt) {
            var value: Float = 42
            _ = try? withUnsafeBytes(of: &value) { try sender.isend($0, to: 0, tag: 3) }
        }
        let receiver = fabric.endpoint(rank: 0)
        receiver.timeout = timeout
        receiver.clock = clock
        var value: Float = 0
        try withUnsafeMutableBytes(of: &value) { try receiver.recv(into: $0, from: 1, tag: 3) }
        XCTAssertEqual(value, 42)
    }
}

/// A manual clock that runs `action` once when it first reads `at` or later.
private final class ScriptedClock: TransportClock, @unchecked Sendable {   // used by one thread
    private var now: Duration = .zero
    private let at: Duration
    private var action: (() -> Void)?

    init(at: Duration, action: @escaping () -> Void) {
        self.at = at
        self.action = action
    }

    var elapsed: Duration { now }
    func realWait(_ maxWait: Duration) -> Duration { .zero }
    func waitedForTraffic(_ maxWait: Duration) {
        now += maxWait
        if now >= at, let action {
            self.action = nil
            action()
        }
    }
}
