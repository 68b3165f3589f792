import Foundation
import Training

/// Where runs keep their logs, records and events: `runs/<kind>-<yyyyMMdd-HHmmss>`.
public enum RunDirectory {
    /// A run directory of its own, created here (with `-2`, `-3`, … when another run started
    /// in the same second), so two runs can never share one.
    public static func create(_ kind: String) throws -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let base = "runs/\(kind)-" + formatter.string(from: Date())
        try FileManager.default.createDirectory(atPath: "runs", withIntermediateDirectories: true)
        for suffix in 1...1000 {
            let path = suffix == 1 ? base : "\(base)-\(suffix)"
            if mkdir(path, 0o755) == 0 {
                markActive(path)
                return path
            }
            guard errno == EEXIST else { throw FleetError("cannot create the run directory \(path): \(String(cString: strerror(errno)))") }
        }
        throw FleetError("cannot create a run directory under runs/: \(base) and 999 more exist; remove old runs")
    }

    /// The run in progress holds a lock on its directory's `.active` file until its process
    /// ends (the kernel drops it even on a crash), so `prune` can tell a live run from a finished one.
    private static func markActive(_ path: String) {
        let fd = open(path + "/.active", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 { close(fd) }
        // The descriptor stays open (and locked) for the life of the process on purpose.
    }

    /// Whether a process still holds the run's lock (a run in progress).
    static func isActive(_ path: String) -> Bool {
        let fd = open(path + "/.active", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }
}

/// A run directory fleet made under `runs/`: what kind of run, when, how big.
public struct RunInfo: Sendable, Equatable {
    public let path: String
    /// `train`, `chaos`, `compare`, `supervise`, `bench`, … (the name before its time stamp).
    public let kind: String
    /// When the run started (from the name), to the second.
    public let started: Date
    public let bytes: Int
    /// `model layout`, from the run's record when it has one.
    public let summary: String?
    /// Still running: a process holds the directory's lock. Never pruned.
    public let active: Bool
}

extension RunDirectory {
    /// The run directories fleet made in `root`, newest first. Directories whose names fleet
    /// did not give (`<kind>-yyyyMMdd-HHmmss[-N]`) are not runs and are left out.
    public static func list(_ root: String = "runs") -> [RunInfo] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let runs = names.compactMap { name -> (RunInfo, Int)? in
            let parts = name.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            // kind (may hold dashes) - date - time [- suffix]
            let suffixed = parts.count >= 4 && Int(parts[parts.count - 1]) != nil && parts[parts.count - 2].count == 6
            let end = suffixed ? parts.count - 1 : parts.count
            guard end >= 3, let started = formatter.date(from: parts[end - 2] + "-" + parts[end - 1]) else { return nil }
            let path = root + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
            let kind = parts[0..<(end - 2)].joined(separator: "-")
            // Only the run's header: its step record can be long.
            let summary = RunRecord.header(path).map { "\($0["model"] as? String ?? "?") \($0["layout"] as? String ?? "?")" }
            return (RunInfo(path: path, kind: kind, started: started, bytes: size(of: path), summary: summary, active: isActive(path)), suffixed ? Int(parts.last!)! : 1)
        }
        return runs.sorted { $0.0.started != $1.0.started ? $0.0.started > $1.0.started : $0.1 > $1.1 }.map(\.0)
    }

    /// Removes all but the newest `keep` runs (of `kind`, when given) in `root`; returns those
    /// removed (none when `dryRun`). A run still in progress is never removed (nor counted
    /// among those kept): deleting its directory would fail it.
    public static func prune(_ root: String = "runs", keep: Int, kind: String? = nil, dryRun: Bool = false) throws -> [RunInfo] {
        let doomed = Array(list(root).filter { (kind == nil || $0.kind == kind) && !$0.active }.dropFirst(max(0, keep)))
        if !dryRun {
            for run in doomed {
                do { try FileManager.default.removeItem(atPath: run.path) } catch {
                    throw FleetError("cannot remove \(run.path): \(FileProblem.cause(error))", duringRun: true)
                }
            }
        }
        return doomed
    }

    /// Bytes of every file under `path`.
    public static func size(of path: String) -> Int {
        guard let files = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        for case let file as String in files {
            total += (try? FileManager.default.attributesOfItem(atPath: path + "/" + file)[.size] as? Int) ?? 0
        }
        return total
    }
}
