import Foundation

/// Simulated time: integer nanoseconds, so sums never drift and runs repeat exactly.
///
/// Durations saturate at `limit` (about 3 years) instead of overflowing: a scenario with an
/// absurdly slow device or link (an efficiency of 1e-300, a bandwidth of a bit a year) gives
/// a step of `limit`, which `StepReport.problem` turns into an error, never a wrapped number.
public struct SimTime: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = min(max(0, nanoseconds), Self.limit.nanoseconds) }
    public static let zero = SimTime(nanoseconds: 0)
    /// The longest simulated duration: 10⁸ s.
    public static let limit = SimTime(exactly: 100_000_000_000_000_000)

    private init(exactly nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// Rounded to the nearest nanosecond; negative durations are zero, non-finite or longer ones `limit`.
    public init(seconds: Double) {
        let ns = (seconds * 1e9).rounded()
        nanoseconds = ns.isNaN || ns >= Double(Self.limit.nanoseconds) ? Self.limit.nanoseconds : ns <= 0 ? 0 : Int64(ns)
    }

    public var seconds: Double { Double(nanoseconds) * 1e-9 }
    /// Whether this duration reached `limit` (and so stands for "longer than that").
    public var isSaturated: Bool { nanoseconds >= Self.limit.nanoseconds }

    public static func < (a: SimTime, b: SimTime) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: SimTime, b: SimTime) -> SimTime { SimTime(exactly: min(a.nanoseconds + b.nanoseconds, limit.nanoseconds)) }
    public static func - (a: SimTime, b: SimTime) -> SimTime { SimTime(exactly: a.nanoseconds - b.nanoseconds) }
    public static func += (a: inout SimTime, b: SimTime) { a = a + b }
    public static func * (a: SimTime, n: Int) -> SimTime {
        let (product, overflow) = a.nanoseconds.multipliedReportingOverflow(by: Int64(n))
        return SimTime(exactly: overflow ? limit.nanoseconds : min(product, limit.nanoseconds))
    }

    public var description: String {
        let s = seconds
        if s >= 1 { return String(format: "%.3f s", s) }
        if s >= 1e-3 { return String(format: "%.3f ms", s * 1e3) }
        return String(format: "%.3f µs", s * 1e6)
    }
}

/// Bytes per second of a link, a memory or a storage system.
public struct Bandwidth: Sendable, Hashable, Codable, CustomStringConvertible {
    public var bytesPerSecond: Double

    public init(bytesPerSecond: Double) { self.bytesPerSecond = bytesPerSecond }
    public static func gigabytesPerSecond(_ value: Double) -> Bandwidth { Bandwidth(bytesPerSecond: value * 1e9) }
    public static func gigabitsPerSecond(_ value: Double) -> Bandwidth { Bandwidth(bytesPerSecond: value * 1e9 / 8) }

    /// Time to move `bytes` at this rate.
    public func time(_ bytes: Double) -> SimTime { SimTime(seconds: bytes / bytesPerSecond) }

    public var description: String { String(format: "%.1f GB/s", bytesPerSecond / 1e9) }
}
