import Foundation

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
            if mkdir(path, 0o755) == 0 { return path }
            guard errno == EEXIST else { throw FleetError("cannot create the run directory \(path): \(String(cString: strerror(errno)))") }
        }
        throw FleetError("cannot create a run directory under runs/: \(base) and 999 more exist; remove old runs")
    }
}
