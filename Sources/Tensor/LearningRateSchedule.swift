import Foundation

/// Linear warm-up to `peak`, then cosine decay to `minimum` at `totalSteps`.
public struct LearningRateSchedule: Sendable, Codable, Equatable {
    public var peak: Float
    public var minimum: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, minimum: Float? = nil, warmupSteps: Int, totalSteps: Int) {
        self.peak = peak
        self.minimum = minimum ?? peak * 0.1
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate for 0-based `step`.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(step - warmupSteps) / Float(span))
        let cosine = 0.5 * (1 + Float(cos(Double.pi * Double(progress))))
        return minimum + (peak - minimum) * cosine
    }
}
