import Foundation

/// Time as a transport's deadlines see it: the machine's clock, or one a test moves by hand
/// so that a 10-minute deadline can be tested in milliseconds.
public protocol TransportClock: AnyObject, Sendable {
    /// Time since an arbitrary origin.
    var elapsed: Duration { get }
    /// The longest a backend may really block when asked to wait `maxWait` for traffic.
    func realWait(_ maxWait: Duration) -> Duration
    /// Told after a wait for traffic of up to `maxWait` ended with nothing new: a manual
    /// clock moves on by that much; the machine's clock has already moved by itself.
    func waitedForTraffic(_ maxWait: Duration)
}

/// The machine's monotonic clock (what every transport uses unless a test says otherwise).
public final class SystemTransportClock: TransportClock {
    public static let shared = SystemTransportClock()
    private let origin = ContinuousClock.now
    public var elapsed: Duration { ContinuousClock.now - origin }
    public func realWait(_ maxWait: Duration) -> Duration { maxWait }
    public func waitedForTraffic(_ maxWait: Duration) {}
}

/// A clock that moves only when told or when a transport waits on it: a rank whose peer
/// stays silent reaches its deadline after as many polls as the deadline holds, without
/// sleeping through it.
public final class ManualTransportClock: TransportClock, @unchecked Sendable {   // `lock` guards `now`
    private let lock = NSLock()
    private var now: Duration = .zero

    public init() {}

    public var elapsed: Duration { lock.withLock { now } }
    /// Backends poll without blocking: only this clock's time passes.
    public func realWait(_ maxWait: Duration) -> Duration { .zero }
    public func waitedForTraffic(_ maxWait: Duration) { advance(by: maxWait) }

    public func advance(by duration: Duration) { lock.withLock { now += duration } }
}
