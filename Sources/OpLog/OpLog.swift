#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One operation a rank ran, as the code that ran it saw it: a matrix product at the BLAS
/// call, a kernel, a collective or a message at the communicator. Kinds and sizes use the
/// step plan's names (`matmul`, `allreduce`, `send`, `layernorm_forward`, …).
public struct LoggedOp: Sendable, Hashable {
    public var kind: String
    public var m = 0, n = 0, k = 0
    public var transA = false, transB = false
    /// Elements of a kernel, or parameters an optimizer updated.
    public var elements = 0
    /// A kernel's own matrix-product FLOPs (attention's per-head products).
    public var flops = 0.0
    /// Bytes of a collective (the buffer handed in) or a message.
    public var bytes = 0
    /// The communicator's role (`tensor`, `data`, …) for collectives and messages.
    public var group = ""
    /// A message's tag.
    public var tag = 0
    /// Run for the tokens routed to one expert: its rows (a product's m, a kernel's elements)
    /// depend on the routing, where the plan gives the balanced load.
    public var routed = false
    /// CLOCK_MONOTONIC nanoseconds, when the log is timed.
    public var start: UInt64 = 0, end: UInt64 = 0

    public init(kind: String) { self.kind = kind }

    /// Whether it is a message (`send`, `recv`).
    public var isMessage: Bool { kind == "send" || kind == "recv" }

    /// Whether it moves bytes between ranks: a message or a collective.
    public var isCommunication: Bool { isMessage || ["allreduce", "reduce_scatter", "all_gather", "alltoall"].contains(kind) }

    /// Its fields as JSON values, named as in the step plan (`StepOp.fields`).
    public var fields: [String: Any] {
        var fields: [String: Any] = ["kind": kind]
        if routed { fields["routed"] = true }
        switch kind {
        case "matmul":
            fields.merge(["m": m, "n": n, "k": k, "trans_a": transA, "trans_b": transB, "flops": 2 * Double(m) * Double(n) * Double(k)]) { $1 }
        case _ where isCommunication:
            fields.merge(["group": group, "bytes": bytes]) { $1 }
            if isMessage { fields["tag"] = tag }
        case "optimizer":
            fields["parameters"] = elements
        default:
            fields["elements"] = elements
            if flops > 0 { fields["flops"] = flops }
        }
        return fields
    }
}

/// The operations one thread runs while the log is installed on it (`OpLog.with`): what tests
/// hold against the plan and what `--trace` writes, one event per operation. An operation's own
/// inner work (attention's per-head products, a collective's messages) is not logged apart.
/// Uninstalled, every hook costs one atomic load.
public final class OpLog: @unchecked Sendable {   // used by the one thread it is installed on
    public private(set) var ops: [LoggedOp] = []
    /// Whether each op carries its start and end times.
    public let timed: Bool
    private var depth = 0
    private var routedDepth = 0

    public init(timed: Bool = false) { self.timed = timed }

    private static let installed = Atomic<Int>(0)
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The log installed on this thread, if any.
    @inline(__always)
    public static var current: OpLog? {
        guard installed.load(ordering: .relaxed) > 0, let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<OpLog>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Runs `body` with `log` installed on this thread.
    public static func with<T>(_ log: OpLog, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, Unmanaged.passUnretained(log).toOpaque())
        installed.add(1, ordering: .relaxed)
        defer {
            installed.subtract(1, ordering: .relaxed)
            pthread_setspecific(key, previous)
        }
        return try withExtendedLifetime(log) { try body() }
    }

    /// CLOCK_MONOTONIC in nanoseconds, which every process on one machine shares.
    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Logs `op` around `body`; operations inside `body` are part of it.
    @inline(__always)
    public static func run<T>(_ op: @autoclosure () -> LoggedOp, _ body: () throws -> T) rethrows -> T {
        guard let log = current, log.depth == 0 else { return try body() }
        var entry = op()
        entry.routed = log.routedDepth > 0
        if log.timed { entry.start = now() }
        log.depth += 1
        defer {
            log.depth -= 1
            if log.timed { entry.end = now() }
            log.ops.append(entry)
        }
        return try body()
    }

    /// Marks the operations `body` runs as routed (one expert's share of the tokens).
    public static func routed<T>(_ body: () throws -> T) rethrows -> T {
        guard let log = current else { return try body() }
        log.routedDepth += 1
        defer { log.routedDepth -= 1 }
        return try body()
    }

    /// A kernel over `elements` (its name is the plan's), with its own products' `flops`.
    public static func kernel<T>(_ kind: String, elements: Int, flops: Double = 0, _ body: () throws -> T) rethrows -> T {
        try run({ var op = LoggedOp(kind: kind); op.elements = elements; op.flops = flops; return op }(), body)
    }

    /// A collective or message of `bytes` over the communicator playing `group`.
    public static func communication<T>(_ kind: String, group: String, bytes: Int, tag: Int = 0, _ body: () throws -> T) rethrows -> T {
        try run({ var op = LoggedOp(kind: kind); op.group = group; op.bytes = bytes; op.tag = tag; return op }(), body)
    }
}
