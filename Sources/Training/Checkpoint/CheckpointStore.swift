import Collectives
import Foundation
import Tensor
import Workload

/// A verified checkpoint in memory: the model's flat parameters and AdamW moments,
/// assembled from every shard whatever layout wrote them.
public final class LoadedCheckpoint {
    public let path: String
    public let manifest: CheckpointManifest
    public let parameters: FloatBuffer
    public let firstMoment: FloatBuffer
    public let secondMoment: FloatBuffer

    init(path: String, manifest: CheckpointManifest, parameters: FloatBuffer, firstMoment: FloatBuffer, secondMoment: FloatBuffer) {
        self.path = path
        self.manifest = manifest
        self.parameters = parameters
        self.firstMoment = firstMoment
        self.secondMoment = secondMoment
    }

    public func buffer(_ kind: CheckpointKind) -> FloatBuffer {
        switch kind {
        case .parameters: return parameters
        case .firstMoment: return firstMoment
        case .secondMoment: return secondMoment
        }
    }
}

/// The checkpoints under one directory: finding, verifying, loading and pruning them.
public struct CheckpointStore {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Checkpoint directories (complete or not), newest step first.
    public func candidates() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)) else { return nil }
            return (step, directory + "/" + name)
        }.sorted { $0.0 > $1.0 }
    }

    /// The checkpoints whose manifest was written (their saves finished), newest first.
    public func complete() -> [(step: Int, path: String)] {
        candidates().filter { FileManager.default.fileExists(atPath: $0.path + "/" + CheckpointFormat.manifestName) }
    }

    /// The newest checkpoint that is complete and passes every check, and why each newer one was skipped.
    public func newestValid() -> (checkpoint: LoadedCheckpoint?, skipped: [(path: String, reason: Error)]) {
        var skipped: [(path: String, reason: Error)] = []
        for candidate in candidates() {
            do { return (try Self.load(candidate.path), skipped) } catch { skipped.append((candidate.path, error)) }
        }
        return (nil, skipped)
    }

    /// Loads `path`: a checkpoint directory, or a directory of them (its newest valid one).
    public static func resolve(_ path: String) throws -> (checkpoint: LoadedCheckpoint, skipped: [(path: String, reason: Error)]) {
        if FileManager.default.fileExists(atPath: path + "/" + CheckpointFormat.manifestName) || PathName.last(of: path).hasPrefix("step-") {
            return (try load(path), [])
        }
        let (checkpoint, skipped) = CheckpointStore(directory: path).newestValid()
        guard let checkpoint else {
            if let last = skipped.first { throw last.reason }
            throw CheckpointError.noCheckpoint(directory: path)
        }
        return (checkpoint, skipped)
    }

    /// Reads the manifest of `path` (no shard checks).
    public static func manifest(_ path: String) throws -> CheckpointManifest {
        let file = path + "/" + CheckpointFormat.manifestName
        guard FileManager.default.fileExists(atPath: file) else { throw CheckpointError.incomplete(path: path) }
        let data = try CheckpointIO.read(file)
        struct Version: Decodable { let version: Int }
        guard let version = try? JSONDecoder().decode(Version.self, from: Data(data)) else {
            throw CheckpointError.damaged(path: file, reason: "the manifest is not readable JSON")
        }
        if version.version > CheckpointFormat.version { throw CheckpointError.newerFormat(path: path, version: version.version) }
        do { return try JSONDecoder().decode(CheckpointManifest.self, from: Data(data)) } catch {
            throw CheckpointError.damaged(path: file, reason: "the manifest does not describe a checkpoint (\(error))")
        }
    }

    /// Checks every shard's size and CRC32C against the manifest; returns the manifest.
    @discardableResult
    public static func verify(_ path: String) throws -> CheckpointManifest {
        let manifest = try manifest(path)
        for shard in manifest.shards { _ = try readShard(shard, in: path) }
        return manifest
    }

    /// A shard's bytes after its checks, and its header.
    static func readShard(_ record: ShardRecord, in path: String) throws -> (bytes: [UInt8], header: ShardHeader, payload: Int) {
        let file = path + "/" + record.file
        let bytes = try CheckpointIO.read(file)
        let found = CRC32C.checksum(bytes)
        guard bytes.count == record.bytes else {
            if found != record.crc32c { throw CheckpointError.corrupt(shard: file, expectedChecksum: record.crc32c, found: found) }
            throw CheckpointError.damaged(path: file, reason: "\(bytes.count) bytes, the manifest says \(record.bytes)")
        }
        guard found == record.crc32c else { throw CheckpointError.corrupt(shard: file, expectedChecksum: record.crc32c, found: found) }
        let magic = CheckpointFormat.magic
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else {
            throw CheckpointError.damaged(path: file, reason: "not a fleet checkpoint shard (bad magic number)")
        }
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        let version = u32(magic.count), length = u32(magic.count + 4), start = magic.count + 8
        if version > CheckpointFormat.version { throw CheckpointError.newerFormat(path: file, version: version) }
        guard bytes.count >= start + length,
              let header = try? JSONDecoder().decode(ShardHeader.self, from: Data(bytes[start..<(start + length)])) else {
            throw CheckpointError.damaged(path: file, reason: "unreadable shard header")
        }
        return (bytes, header, start + length)
    }

    /// Reads and verifies every shard of `path` and assembles the full tensors; every
    /// element of every tensor must be present exactly once.
    public static func load(_ path: String) throws -> LoadedCheckpoint {
        let manifest = try manifest(path)
        let total = manifest.tensors.reduce(0) { $0 + $1.count }
        var offsets: [String: (offset: Int, count: Int)] = [:], running = 0
        for tensor in manifest.tensors {
            offsets[tensor.name] = (running, tensor.count)
            running += tensor.count
        }
        let buffers = CheckpointKind.allCases.map { _ in FloatBuffer(count: total) }
        var covered = CheckpointKind.allCases.map { _ in 0 }
        for record in manifest.shards {
            let (bytes, header, payload) = try readShard(record, in: path)
            guard header.slices == record.slices else {
                throw CheckpointError.damaged(path: path + "/" + record.file, reason: "its header does not match the manifest")
            }
            try bytes.withUnsafeBytes { raw in
                for slice in header.slices {
                    guard let tensor = offsets[slice.tensor], slice.start >= 0, slice.count >= 0, slice.start + slice.count <= tensor.count,
                          payload + (slice.offset + slice.count) * 4 <= bytes.count else {
                        throw CheckpointError.damaged(path: path + "/" + record.file, reason: "slice \(slice.tensor)[\(slice.start)..<\(slice.start + slice.count)] is out of range")
                    }
                    let kind = CheckpointKind.allCases.firstIndex(of: slice.kind)!
                    let target = UnsafeMutableRawPointer(buffers[kind].pointer + tensor.offset + slice.start)
                    target.copyMemory(from: raw.baseAddress! + payload + slice.offset * 4, byteCount: slice.count * 4)
                    covered[kind] += slice.count
                }
            }
        }
        for (kind, count) in zip(CheckpointKind.allCases, covered) where count != total {
            throw CheckpointError.damaged(path: path, reason: "its shards hold \(count) of the \(total) elements of the \(kind.rawValue)")
        }
        return LoadedCheckpoint(path: path, manifest: manifest, parameters: buffers[0], firstMoment: buffers[1], secondMoment: buffers[2])
    }

    /// Removes all but the newest `keep` complete checkpoints (and incomplete ones older than the newest complete).
    public func prune(keep: Int) {
        guard keep > 0 else { return }
        let finished = Set(complete().map(\.path))
        var complete = 0
        for candidate in candidates() {
            let isComplete = finished.contains(candidate.path)
            if isComplete { complete += 1 }
            if (isComplete && complete > keep) || (!isComplete && complete > 0) {
                try? FileManager.default.removeItem(atPath: candidate.path)
            }
        }
    }
}
