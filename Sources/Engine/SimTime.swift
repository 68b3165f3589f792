import Foundation

/// Simulated time: integer nanoseconds, so sums never drift and runs repeat exactly.
public struct SimTime: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static let zero = SimTime(nanoseconds: 0)

    /// Rounded to the nearest nanosecond.
    public init(seconds: Double) {
        precondition(seconds.isFinite && seconds >= 0, "simulated durations are finite and non-negative (got \(seconds))")
        nanoseconds = Int64((seconds * 1e9).rounded())
    }

    public var seconds: Double { Double(nanoseconds) * 1e-9 }

    public static func < (a: SimTime, b: SimTime) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: SimTime, b: SimTime) -> SimTime { SimTime(nanoseconds: a.nanoseconds + b.nanoseconds) }
    public static func - (a: SimTime, b: SimTime) -> SimTime { SimTime(nanoseconds: a.nanoseconds - b.nanoseconds) }
    public static func += (a: inout SimTime, b: SimTime) { a.nanoseconds += b.nanoseconds }
    public static func * (a: SimTime, n: Int) -> SimTime { SimTime(nanoseconds: a.nanoseconds * Int64(n)) }

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
