import ArgumentParser
import Foundation
import Workload

/// Output files named on the command line, checked before any work: a run should not spend
/// its hours and then fail to write its trace, plot or scenario.
enum OutputPath {
    /// Why `path` cannot be written as a file (nil when it can): it is a directory, or its
    /// directory is missing, not a directory, or not writable.
    static func problem(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "it is a directory; name a file inside it" }
            return access(path, W_OK) == 0 ? nil : "it is not writable (\(String(cString: strerror(errno))))"
        }
        guard !path.isEmpty else { return "the path is empty" }
        let directory = PathName.directory(of: path)
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            return "its directory \(directory) does not exist"
        }
        guard isDirectory.boolValue else { return "\(directory) is not a directory" }
        return access(directory, W_OK) == 0 ? nil : "its directory \(directory) is not writable (\(String(cString: strerror(errno))))"
    }

    /// Throws a usage error naming `flag` when `path` cannot be written.
    static func check(_ path: String?, flag: String) throws {
        guard let path, let problem = problem(path) else { return }
        throw ValidationError("\(flag) \(path): \(problem)")
    }
}
