import Foundation
import OpLog

/// Records what a rank spends its time on, as Chrome/Perfetto trace events ("X" spans).
///
/// Times come from CLOCK_MONOTONIC, which all processes on one machine share, so the ranks'
/// spans line up on a common clock without any exchange.
public final class Tracer {
    public struct Span: Sendable {
        public let name: String
        /// The lane the span is drawn in: compute, tensor-parallel, pipeline, data-parallel, optimizer, context-parallel.
        public let lane: String
        public let start: UInt64
        public let end: UInt64
        /// The event's `args` object, as JSON text.
        public var args: String?
    }

    public private(set) var spans: [Span] = []

    public init() {}

    /// The clock of `OpLog`'s timed ops too, so phase spans and the ops inside them nest.
    public static func now() -> UInt64 { OpLog.now() }

    /// Runs `body` and records it as one span.
    @discardableResult
    public func span<T>(_ name: String, lane: String, _ body: () throws -> T) rethrows -> T {
        let start = Self.now()
        defer { spans.append(Span(name: name, lane: lane, start: start, end: Self.now())) }
        return try body()
    }

    /// Records a span that started at `start` and ends now.
    public func record(_ name: String, lane: String, start: UInt64) {
        spans.append(Span(name: name, lane: lane, start: start, end: Self.now()))
    }

    /// Records one op a rank ran: named and laned by its kind and group, its `args` the op's
    /// fields (as `fleet plan --json` names them) with the rank and step.
    public func record(_ op: LoggedOp, rank: Int, step: Int) {
        let lane: String, name: String
        switch op.kind {
        case "matmul": (lane, name) = ("compute", "matmul \(op.m)×\(op.n)×\(op.k)")
        case "optimizer": (lane, name) = ("optimizer", "optimizer")
        case _ where op.isCommunication:
            lane = ["tensor": "tensor-parallel", "pipeline": "pipeline", "context": "context-parallel"][op.group] ?? "data-parallel"
            name = "\(op.kind) \(op.group) \(Self.size(op.bytes))"
        default: (lane, name) = ("compute", op.kind)
        }
        var fields = op.fields
        fields["rank"] = rank
        fields["step"] = step
        let args = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
        spans.append(Span(name: name, lane: lane, start: op.start, end: max(op.end, op.start), args: args))
    }

    static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / 1_048_576) : bytes >= 1 << 10 ? "\(bytes >> 10) KiB" : "\(bytes) B"
    }

    /// This rank's spans as trace-event JSON objects (without the surrounding array).
    public func events(pid: Int, processName: String) -> [String] {
        let lanes = ["compute", "tensor-parallel", "pipeline", "data-parallel", "optimizer", "context-parallel"]
        var events = ["{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"args\":{\"name\":\"\(processName)\"}}",
                      "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(pid),\"args\":{\"sort_index\":\(pid)}}"]
        for (tid, lane) in lanes.enumerated() {
            events.append("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\"\(lane)\"}}")
        }
        for span in spans {
            let tid = lanes.firstIndex(of: span.lane) ?? lanes.count
            let args = span.args.map { ",\"args\":" + $0 } ?? ""
            events.append(String(format: "{\"name\":\"%@\",\"cat\":\"%@\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d",
                                 span.name, span.lane, Double(span.start) / 1000, Double(span.end - span.start) / 1000, pid, tid) + args + "}")
        }
        return events
    }
}
