import Collectives
import Foundation
import Tensor
import Workload

/// A simple saved-weights file: magic, a JSON header (model, parameter count, step and the
/// parameters' CRC32C), then the flat Float32 parameters (little-endian). The checkpoint
/// format builds on it.
public enum WeightsFile {
    static let magic = Array("FLEETWT1".utf8)

    public struct Header: Codable, Sendable {
        public var model: ModelSpec
        public var parameterCount: Int
        public var step: Int
        /// CRC32C of the parameter bytes, checked on load (absent in files written before it was added).
        public var crc32c: UInt32?
    }

    public enum Failure: Error, CustomStringConvertible {
        case notAWeightsFile(String)
        case corrupt(String, reason: String)
        case modelMismatch(String, found: String, expected: String)
        case cannotWrite(String, reason: String)
        case cannotRead(String, reason: String)

        public var description: String {
            switch self {
            case let .cannotWrite(path, reason): return "cannot write weights to \(path): \(reason)"
            case let .cannotRead(path, reason): return "cannot read weights from \(path): \(reason)"
            case .notAWeightsFile(let path): return "\(path) is not a fleet weights file (bad magic number); pass a file written by fleet train --save"
            case let .corrupt(path, reason): return "\(path) is damaged: \(reason); save it again with fleet train --save"
            case let .modelMismatch(path, found, expected): return "\(path) holds \(found) weights, not \(expected)"
            }
        }
    }

    /// Writes atomically: a temporary file, fsync, then rename.
    public static func save(_ model: GPT, step: Int, to path: String) throws {
        let bytes = UnsafeRawBufferPointer(start: model.parameters.pointer, count: model.layout.count * 4)
        // Sorted keys: the same weights give the same file, byte for byte.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let header = try encoder.encode(Header(model: model.spec, parameterCount: model.layout.count, step: step,
                                                     crc32c: CRC32C.checksum(bytes)))
        var data = Data(magic)
        var length = UInt32(header.count).littleEndian
        data.append(Data(bytes: &length, count: 4))
        data.append(header)
        data.append(Data(bytes: model.parameters.pointer, count: model.layout.count * 4))
        if let problem = WritablePath.problem(path, .fileCreatingDirectories) { throw Failure.cannotWrite(path, reason: problem) }
        try? FileManager.default.createDirectory(atPath: PathName.directory(of: path), withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw Failure.cannotWrite(path, reason: "cannot create \(temporary) (\(String(cString: strerror(errno))))")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.synchronize()
        try handle.close()
        // Only a completed rename makes the weights visible under their name; say so when it fails.
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure.cannotWrite(path, reason: reason)
        }
    }

    /// Reads a model saved by `save`.
    public static func load(_ path: String, seed: UInt64 = 0) throws -> (model: GPT, step: Int) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw Failure.cannotRead(path, reason: FileProblem.cause(error))
        }
        guard data.count >= 12, Array(data.prefix(8)) == magic else { throw Failure.notAWeightsFile(path) }
        let length = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        guard data.count >= 12 + length else { throw Failure.corrupt(path, reason: "header cut short") }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data.subdata(in: 12..<(12 + length))) } catch {
            throw Failure.corrupt(path, reason: "unreadable header")
        }
        let model = GPT(spec: header.model, seed: seed)
        guard header.parameterCount == model.layout.count else {
            throw Failure.corrupt(path, reason: "header says \(header.parameterCount) parameters, \(header.model.name) has \(model.layout.count)")
        }
        let body = data.subdata(in: (12 + length)..<data.count)
        guard body.count == model.layout.count * 4 else {
            throw Failure.corrupt(path, reason: "expected \(model.layout.count * 4) bytes of parameters, found \(body.count)")
        }
        if let expected = header.crc32c {
            let found = body.withUnsafeBytes { CRC32C.checksum($0) }
            guard found == expected else {
                throw Failure.corrupt(path, reason: "its parameters fail their checksum (CRC32C \(String(expected, radix: 16)) written, "
                                      + "\(String(found, radix: 16)) read): the file changed after it was saved")
            }
        }
        body.withUnsafeBytes { model.parameters.pointer.update(from: $0.bindMemory(to: Float.self).baseAddress!, count: model.layout.count) }
        return (model, header.step)
    }
}
