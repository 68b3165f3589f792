import Foundation

/// Errors from transports and collectives; each description ends with what to do next.
public enum TransportError: Error, Equatable, CustomStringConvertible {
    /// `rank` did not take part in `operation` within `after`.
    case peerTimedOut(rank: Int, operation: String, after: Duration)
    /// `rank`'s process is gone (its connection closed).
    case peerDied(rank: Int, operation: String)
    /// Two ranks disagree on a message's size.
    case sizeMismatch(operation: String, receiver: Int, expectedBytes: Int, sender: Int, sentBytes: Int?)
    /// A message's CRC32C did not match the one its sender computed (corruption in transit).
    case corruptMessage(from: Int, tag: Int32, bytes: Int, expected: UInt32, found: UInt32)
    /// A message arrived out of its sender's order (a duplicate, or one lost before it).
    case messageOutOfOrder(from: Int, tag: Int32, expected: UInt32, found: UInt32)
    case invalidRank(Int, worldSize: Int)
    case invalidGroup(String)
    case rendezvousFailed(String)
    case backend(String)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .peerTimedOut(rank, operation, after):
            return "rank \(rank) did not answer within \(after.seconds) s during \(operation); "
                + "check whether that rank crashed, hangs, or runs a different command (raise the deadline with --timeout)"
        case let .peerDied(rank, operation):
            return "rank \(rank) exited during \(operation); see that rank's output for why it stopped"
        case let .sizeMismatch(operation, receiver, expected, sender, sent):
            let sentText = sent.map { "\($0) bytes" } ?? "a larger message"
            return "size mismatch in \(operation): rank \(receiver) expected \(expected) bytes but rank \(sender) sent \(sentText); "
                + "every rank must call the same collective with the same element count"
        case let .corruptMessage(from, tag, bytes, expected, found):
            return "a \(bytes)-byte message from rank \(from) (tag \(tag)) arrived corrupted: CRC32C expected "
                + String(format: "%08x, found %08x", expected, found) + "; check that link or host (fleet retries from the last checkpoint with --max-restarts)"
        case let .messageOutOfOrder(from, tag, expected, found):
            return "a message from rank \(from) (tag \(tag)) arrived out of order: sequence number \(found), expected \(expected) "
                + "(a duplicate, or a message lost before it); fleet retries from the last checkpoint with --max-restarts"
        case let .invalidRank(rank, worldSize):
            return "rank \(rank) is outside this world of \(worldSize) ranks"
        case let .invalidGroup(reason):
            return "invalid group: \(reason)"
        case let .rendezvousFailed(reason):
            return "ZeroMQ rendezvous failed: \(reason); check FLEET_ZMQ_COORDINATOR and that every rank was started"
        case let .backend(reason):
            return reason
        case let .unsupported(reason):
            return reason
        }
    }
}

extension Duration {
    /// This duration in seconds as a Double (for reports and arithmetic on rates).
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
