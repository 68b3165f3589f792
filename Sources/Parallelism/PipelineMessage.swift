/// One pipeline message of a step: a micro-batch's activations sent forward or its gradients
/// sent back, from one (virtual) stage to another. The one identity the trainer's transport tags, the
/// schedule check and the simulator's arrival events share.
public struct PipelineMessage: Sendable, Hashable, CustomStringConvertible {
    public enum Payload: Int, Sendable, Hashable { case activation = 0, gradient = 1 }

    public let payload: Payload
    public let microbatch: Int
    public let from: Int
    public let to: Int

    public init(_ payload: Payload, microbatch: Int, from: Int, to: Int) {
        self.payload = payload
        self.microbatch = microbatch
        self.from = from
        self.to = to
    }

    /// Messages of one channel (payload, sender, receiver) must be received in the order they are sent.
    public struct Channel: Sendable, Hashable, CustomStringConvertible {
        public let payload: Payload, from: Int, to: Int
        public var description: String { "\(payload == .activation ? "activations" : "gradients") \(from)→\(to)" }
    }

    public var channel: Channel { Channel(payload: payload, from: from, to: to) }

    /// A number unique to this message within a step of a `stages`-stage pipeline (virtual
    /// stages when interleaved; a transport tag, an event's subject): ((micro-batch · stages + from) · stages + to) · 2 + payload.
    public func tag(stages: Int) -> Int {
        ((microbatch * stages + from) * stages + to) * 2 + payload.rawValue
    }

    public var description: String {
        "\(payload == .activation ? "activations" : "gradients") of micro-batch \(microbatch), stage \(from) → \(to)"
    }
}

extension PipelineSchedule.Action {
    /// The message a send or receive moves, between virtual stages (the sender of an activation
    /// is the stage before its receiver, of a gradient the one after); nil for compute and the optimizer.
    public var message: PipelineMessage? {
        switch self {
        case let .sendActivation(m, to): return PipelineMessage(.activation, microbatch: m, from: to - 1, to: to)
        case let .receiveActivation(m, from): return PipelineMessage(.activation, microbatch: m, from: from, to: from + 1)
        case let .sendGradient(m, to): return PipelineMessage(.gradient, microbatch: m, from: to + 1, to: to)
        case let .receiveGradient(m, from): return PipelineMessage(.gradient, microbatch: m, from: from, to: from - 1)
        case .forward, .backward, .optimizerStep: return nil
        }
    }

    /// Whether it sends (rather than receives) its message.
    public var isSend: Bool {
        switch self {
        case .sendActivation, .sendGradient: return true
        default: return false
        }
    }
}
