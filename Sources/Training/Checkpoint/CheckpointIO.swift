import Collectives
import Foundation
import Workload

/// Durable file writes for checkpoints: a temporary name, write, fsync, rename, then fsync
/// of the directory, so a file is either absent or complete after a crash.
enum CheckpointIO {
    /// Bytes per write call (and per checksum update).
    static let chunk = 8 << 20

    /// Writes `pieces` to `path` durably and returns the bytes written and their CRC32C.
    /// `stopHalfway` (tests only) kills this process after half the bytes, like a crash mid-save.
    static func write(_ pieces: [UnsafeRawBufferPointer], to path: String, stopHalfway: Bool = false) throws -> (bytes: Int, crc: UInt32) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError.writeFailed(path: temporary, reason: String(cString: strerror(errno))) }
        var closed = false
        defer { if !closed { close(fd) } }
        let total = pieces.reduce(0) { $0 + $1.count }
        var crc: UInt32 = 0, written = 0
        for piece in pieces {
            var offset = 0
            while offset < piece.count {
                let length = min(chunk, piece.count - offset)
                let part = UnsafeRawBufferPointer(rebasing: piece[offset..<(offset + length)])
                crc = CRC32C.checksum(part, continuing: crc)
                if let code = FileOutput.write(part, to: fd) {
                    throw CheckpointError.writeFailed(path: temporary, reason: String(cString: strerror(code)))
                }
                offset += length
                written += length
                if stopHalfway && written >= total / 2 { kill(getpid(), SIGKILL) }
            }
        }
        guard fsync(fd) == 0 else { throw CheckpointError.writeFailed(path: temporary, reason: String(cString: strerror(errno))) }
        closed = true
        guard close(fd) == 0 else { throw CheckpointError.writeFailed(path: temporary, reason: String(cString: strerror(errno))) }
        guard rename(temporary, path) == 0 else { throw CheckpointError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
        syncDirectory(of: path)
        return (written, crc)
    }

    static func write(_ bytes: [UInt8], to path: String) throws -> (bytes: Int, crc: UInt32) {
        try bytes.withUnsafeBytes { try write([$0], to: path) }
    }

    /// Makes a rename durable: fsync of the directory that holds `path`.
    static func syncDirectory(of path: String) {
        let fd = open(PathName.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    static func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw CheckpointError.writeFailed(path: path, reason: "cannot create the directory (\(error.localizedDescription))")
        }
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.damaged(path: path, reason: "the file is missing or unreadable")
        }
        return [UInt8](data)
    }
}
