import Foundation

/// Records what a rank spends its time on, as Chrome/Perfetto trace events ("X" spans).
///
/// Times come from CLOCK_MONOTONIC, which all processes on one machine share, so the ranks'
/// spans line up on a common clock without any exchange.
public final class Tracer {
    public struct Span: Sendable {
        public let name: String
        /// The lane the span is drawn in: compute, tensor-parallel, pipeline, data-parallel, optimizer.
        public let lane: String
        public let start: UInt64
        public let end: UInt64
    }

    public private(set) var spans: [Span] = []

    public init() {}

    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

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

    /// This rank's spans as trace-event JSON objects (without the surrounding array).
    public func events(pid: Int, processName: String) -> [String] {
        let lanes = ["compute", "tensor-parallel", "pipeline", "data-parallel", "optimizer"]
        var events = ["{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(pid),\"args\":{\"name\":\"\(processName)\"}}",
                      "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(pid),\"args\":{\"sort_index\":\(pid)}}"]
        for (tid, lane) in lanes.enumerated() {
            events.append("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":\(pid),\"tid\":\(tid),\"args\":{\"name\":\"\(lane)\"}}")
        }
        for span in spans {
            let tid = lanes.firstIndex(of: span.lane) ?? lanes.count
            events.append(String(format: "{\"name\":\"%@\",\"cat\":\"%@\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d}",
                                 span.name, span.lane, Double(span.start) / 1000, Double(span.end - span.start) / 1000, pid, tid))
        }
        return events
    }
}
