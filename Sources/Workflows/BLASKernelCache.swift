import Foundation
import Workload

/// Verdicts of kernel checks, kept per (OpenBLAS build, CPU, candidates) in one JSON file, so a
/// machine checks its kernels once and later starts cost a file read.
public struct BLASKernelCache: Sendable {
    public struct Rejection: Codable, Equatable, Sendable {
        public var kernel: String
        public var reason: String

        public init(kernel: String, reason: String) {
            self.kernel = kernel
            self.reason = reason
        }
    }

    public struct Verdict: Codable, Equatable, Sendable {
        /// The first candidate that passed, or nil when none did.
        public var kernel: String?
        public var rejected: [Rejection]
        /// Its one-thread sgemm rate in the check, for the record.
        public var gflops: Double?
        /// Whether its products are the same however they are split (rows over threads and ranks, columns over shards).
        public var splitInvariant: Bool?

        public init(kernel: String?, rejected: [Rejection]) {
            self.kernel = kernel
            self.rejected = rejected
        }
    }

    private struct File: Codable {
        var version = 2
        var entries: [String: Verdict] = [:]
    }

    public let path: String?

    public init(directory: String?) {
        path = directory.map { $0 + "/blas-kernels.json" }
    }

    /// FLEET_CACHE_DIR, else $XDG_CACHE_HOME/fleet, else ~/.cache/fleet.
    public static func directory(environment: [String: String]) -> String? {
        if let dir = environment["FLEET_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/fleet" }
        return environment["HOME"].map { $0 + "/.cache/fleet" }
    }

    public func verdict(for key: String) -> Verdict? {
        read().entries[key]
    }

    /// Adds a verdict; a cache that cannot be written only costs the next start another check.
    public func store(_ verdict: Verdict, for key: String) {
        guard let path else { return }
        var file = read()
        file.entries[key] = verdict
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return }
        let directory = PathName.directory(of: path)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Several ranks may check at once: each writes its own file and renames it into place.
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }

    private func read() -> File {
        guard let path, let data = FileManager.default.contents(atPath: path),
              let file = try? JSONDecoder().decode(File.self, from: data), file.version == 2 else { return File() }
        return file
    }
}
