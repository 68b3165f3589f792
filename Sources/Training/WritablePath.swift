import Foundation
import Workload

/// Paths a run will write, checked before it spends any time: one check for weights files,
/// traces, plots, scenarios and checkpoint or run directories.
public enum WritablePath {
    /// What will be written at the path.
    public enum Target: Sendable {
        /// A file whose directory must already exist (a trace, a plot).
        case file
        /// A file whose missing directories are created when it is written (weights).
        case fileCreatingDirectories
        /// A directory, created with its missing parents when needed (checkpoints, run records).
        case directory
    }

    /// Why `path` cannot be written as `target` (nil when it can): a directory where a file goes
    /// or the reverse, a parent that is a file, or a directory that is missing or not writable
    /// (a read-only file system refuses even root).
    public static func problem(_ path: String, _ target: Target) -> String? {
        guard !path.isEmpty else { return "the path is empty" }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            switch (target, isDirectory.boolValue) {
            case (.directory, false): return "it is a file, not a directory"
            case (.directory, true): return writable(path, what: "it")
            case (_, true): return "it is a directory; name a file inside it, such as \(path)/\(example(target))"
            case (_, false): return writable(path, what: "it")
            }
        }
        var ancestor = PathName.directory(of: path)
        if case .file = target {
            guard FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) else {
                return "its directory \(ancestor) does not exist"
            }
        } else {
            // Missing directories are created when written: the nearest one that exists must take them.
            while !FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) && ancestor != "/" && ancestor != "." {
                ancestor = PathName.directory(of: ancestor)
            }
        }
        guard isDirectory.boolValue else { return "\(ancestor) is not a directory" }
        return writable(ancestor, what: ancestor)
    }

    private static func writable(_ path: String, what: String) -> String? {
        access(path, W_OK) == 0 ? nil : "\(what) is not writable (\(String(cString: strerror(errno))))"
    }

    private static func example(_ target: Target) -> String { target == .fileCreatingDirectories ? "model.weights" : "out" }
}

extension WritablePath.Target: Equatable {}

/// Writes that report a full disk, a read-only file system or a vanished file as an error.
/// Foundation's `FileHandle.write(_:)` traps on any of them, which took a whole run down with
/// a crash dump when its disk filled.
public enum FileOutput {
    /// A write that failed: the path and the cause, and what to do about it.
    public struct Failure: Error, CustomStringConvertible {
        public let path: String, code: Int32
        public init(path: String, code: Int32) { self.path = path; self.code = code }
        public var description: String {
            let advice: String
            switch code {
            case ENOSPC, EDQUOT: advice = "; free space on that disk or write elsewhere"
            case EROFS: advice = "; the file system is mounted read-only: write elsewhere"
            case ENOENT: advice = "; its directory was removed while the run was writing to it"
            default: advice = ""
            }
            return "\(path): \(String(cString: strerror(code)))\(advice)"
        }
    }

    /// Writes all of `bytes` to `fd` (short writes and interruptions retried); the errno on failure.
    public static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32) -> Int32? {
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            // A write that takes nothing would loop forever: a device that accepts no more is full.
            guard n > 0 else { return n < 0 ? errno : ENOSPC }
            done += n
        }
        return nil
    }

    /// Appends `text` to the file at `path`, creating it when `create` (otherwise a missing
    /// file — its directory removed mid-run — is an error, not a fresh file holding the rest).
    public static func append(_ text: String, to path: String, create: Bool) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
        guard fd >= 0 else { throw Failure(path: path, code: errno) }
        defer { close(fd) }
        try write(text, to: fd, path: path)
    }

    /// Writes `text` to an open descriptor; `path` names it in the error.
    public static func write(_ text: String, to fd: Int32, path: String) throws {
        var text = text
        if let code = text.withUTF8({ write(UnsafeRawBufferPointer($0), to: fd) }) { throw Failure(path: path, code: code) }
    }
}
