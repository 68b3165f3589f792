/// One fault to cause on purpose: what, on which rank, at which step(s) and phase.
public struct Fault: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// The process dies (SIGKILL, or exit with `signal=exit`).
        case crash
        /// The process stops responding (sleeps forever), as a wedged GPU or a deadlock would.
        case hang
        /// A straggler: every compute phase takes `factor` times as long.
        case slow
        /// Every message this rank sends waits `ms` milliseconds first.
        case delay
        /// The first message this rank sends in the step is lost.
        case drop
        /// The first message this rank sends in the step arrives with one bit flipped.
        case corrupt
        /// The first message this rank sends in the step is delivered twice.
        case duplicate
        /// One bit of the exponent of a gradient (or `target=parameter`) element flips.
        case bitflip
        /// A gradient element becomes NaN.
        case nan
        /// This rank's checkpoint write fails (`mode=full`: no space left) or is torn (`mode=torn`: the process dies halfway).
        case checkpoint
    }

    public enum Phase: String, Sendable, Hashable, CaseIterable { case forward, backward, optimizer, any }

    public var kind: Kind
    public var rank: Int
    /// Training steps (1-based, as printed) during which it acts.
    public var steps: ClosedRange<Int>
    public var phase: Phase = .any
    /// `slow`: how many times longer compute takes.
    public var factor: Double = 3
    /// `delay`: milliseconds added to each send.
    public var milliseconds: Double = 100
    /// `bitflip`: which bit of the float flips (30, the top exponent bit, by default; a low
    /// mantissa bit makes silent corruption that only a replica comparison catches).
    public var bit = 30
    /// `bitflip`, `nan`: gradients (default) or parameters.
    public var targetsParameters = false
    /// `crash`: exit instead of SIGKILL. `checkpoint`: torn instead of a full disk.
    public var gentle = false

    public init(kind: Kind, rank: Int, steps: ClosedRange<Int>) {
        self.kind = kind
        self.rank = rank
        self.steps = steps
    }

    public var description: String {
        var text = "\(kind.rawValue) on rank \(rank) at step " + (steps.count == 1 ? "\(steps.lowerBound)" : "\(steps.lowerBound)-\(steps.upperBound)")
        if phase != .any { text += " (\(phase.rawValue))" }
        switch kind {
        case .slow: text += String(format: ", %.1f× slower", factor)
        case .delay: text += String(format: ", +%.0f ms per send", milliseconds)
        case .nan: text += targetsParameters ? ", in a parameter" : ", in a gradient"
        case .bitflip: text += (targetsParameters ? ", in a parameter" : ", in a gradient") + (bit == 30 ? "" : ", bit \(bit)")
        case .checkpoint: text += gentle ? ", torn write" : ", disk full"
        default: break
        }
        return text
    }

    /// Whether it acts at `step` (1-based) in `phase`.
    public func acts(at step: Int, phase current: Phase) -> Bool {
        steps.contains(step) && (phase == .any || current == .any || phase == current)
    }
}
