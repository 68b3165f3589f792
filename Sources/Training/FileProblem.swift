import Foundation

/// A file system error as one line — the path and the cause (`No such file or directory`,
/// `Is a directory`, `Permission denied`) — instead of Foundation's dump of its `userInfo`.
public enum FileProblem {
    /// The cause alone: the underlying POSIX error's text where there is one.
    public static func cause(_ error: Error) -> String {
        let error = error as NSError
        if error.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(error.code))) }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        // Foundation on Linux does not always keep the POSIX error: look at the path itself.
        if let path = path(of: error) {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return String(cString: strerror(ENOENT)) }
            if isDirectory.boolValue { return String(cString: strerror(EISDIR)) }
        }
        switch CocoaError.Code(rawValue: error.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: return String(cString: strerror(ENOENT))
        case .fileReadNoPermission, .fileWriteNoPermission: return String(cString: strerror(EACCES))
        case .fileWriteOutOfSpace: return String(cString: strerror(ENOSPC))
        case .fileWriteVolumeReadOnly: return String(cString: strerror(EROFS))
        default: return error.localizedDescription
        }
    }

    /// `path: cause` for an error of the file system (nil for any other error).
    public static func describe(_ error: Error) -> String? {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
        return (path(of: error).map { "\($0): " } ?? "") + cause(error)
    }

    static func path(of error: Error) -> String? {
        let error = error as NSError
        return error.userInfo[NSFilePathErrorKey] as? String ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
    }
}
