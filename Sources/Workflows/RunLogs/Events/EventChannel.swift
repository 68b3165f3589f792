import Foundation

/// A run's event channel: an append-only JSON-lines file that every process of the run (the
/// supervisor, the launcher's workers, ranks under mpirun) finds through `FLEET_EVENTS`.
/// Each event is one `write` to a file opened with O_APPEND, so lines from concurrent
/// processes never interleave.
public struct EventChannel: Sendable {
    /// The environment variable that names the channel for child processes.
    public static let variable = "FLEET_EVENTS"
    public let path: String

    public init(path: String) { self.path = path }

    public static func fromEnvironment(_ environment: [String: String]) -> EventChannel? {
        environment[variable].flatMap { $0.isEmpty ? nil : EventChannel(path: $0) }
    }

    /// Appends `event`. Reporting must not stop a run, so a failed write is dropped.
    public func emit(_ event: RunEvent) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard var line = try? encoder.encode(event) else { return }
        line.append(UInt8(ascii: "\n"))
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Every event so far, in the order written; a line that is not an event (a torn last
    /// write of a killed process) is skipped.
    public func read() -> [RunEvent] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? decoder.decode(RunEvent.self, from: Data($0)) }
    }
}
