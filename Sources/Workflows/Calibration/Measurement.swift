import Foundation

/// A quantity measured several times: the median, and the spread (max − min over the median)
/// so that repeated calibrations can be judged.
public struct Measurement: Codable {
    public var median: Double
    public var spread: Double
    public var repeats: Int
    /// Every repeat, in the order taken.
    public var samples: [Double]

    public init(_ samples: [Double]) {
        self.samples = samples
        median = Self.quantile(samples, 0.5)
        spread = median > 0 ? ((samples.max() ?? 0) - (samples.min() ?? 0)) / median : 0
        repeats = samples.count
    }

    public var spreadText: String { String(format: "spread %.1f%% over %d", spread * 100, repeats) }

    /// Seconds per call of `body`: each repeat runs it enough times to last `minimum` seconds.
    public static func seconds(repeats: Int, minimum: Double = 0.01, _ body: () -> Void) -> Measurement {
        body()
        let once = clock(body)
        let calls = max(1, min(1 << 16, Int(minimum / max(once, 1e-9))))
        let samples = (0..<repeats).map { _ in clock { for _ in 0..<calls { body() } } / Double(calls) }
        return Measurement(samples)
    }

    /// The q-quantile, interpolating between neighbours (q = 0.5: the median).
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let position = q * Double(sorted.count - 1), low = Int(position), high = min(low + 1, sorted.count - 1)
        return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
    }

    public static func clock(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let (s, atto) = (ContinuousClock.now - start).components
        return Double(s) + Double(atto) * 1e-18
    }
}
