import Foundation

/// An owned, 64-byte-aligned, zero-initialised Float32 buffer (parameters, gradients, activations).
///
/// A page-backed buffer is mapped from the kernel instead of the allocator: its pages cost
/// memory only once written, and `release` hands whole pages back (they read as zero again),
/// so a rank that holds only part of a flat buffer (a pipeline stage, a ZeRO shard) holds
/// only that part's memory while every offset stays the same on every rank.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    /// Bytes mapped with mmap (0: allocated on the heap).
    private let mappedBytes: Int

    public init(count: Int) {
        self.count = count
        mappedBytes = 0
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// A page-backed buffer (see the type's note); falls back to the heap if mapping fails.
    public init(pageBackedCount count: Int) {
        self.count = count
        let bytes = Self.pageAligned(max(count, 1) * 4)
        let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if let raw, raw != MAP_FAILED {
            mappedBytes = bytes
            pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        } else {
            mappedBytes = 0
            let heap = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
            pointer = heap.bindMemory(to: Float.self, capacity: max(count, 1))
            pointer.initialize(repeating: 0, count: max(count, 1))
        }
    }

    deinit {
        if mappedBytes > 0 { munmap(UnsafeMutableRawPointer(pointer), mappedBytes) } else { pointer.deallocate() }
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    static func pageAligned(_ bytes: Int) -> Int { (bytes + pageSize - 1) / pageSize * pageSize }

    /// Sets `ranges` to zero and, in a page-backed buffer, gives their whole pages back to the
    /// kernel (the edges that share a page with other elements are only zeroed).
    public func release(_ ranges: [Range<Int>]) {
        let page = Self.pageSize / 4
        for range in ranges where !range.isEmpty {
            precondition(range.lowerBound >= 0 && range.upperBound <= count, "release \(range) outside a buffer of \(count)")
            guard mappedBytes > 0 else { (pointer + range.lowerBound).update(repeating: 0, count: range.count); continue }
            let firstPage = (range.lowerBound + page - 1) / page * page, lastPage = range.upperBound / page * page
            guard firstPage < lastPage else { (pointer + range.lowerBound).update(repeating: 0, count: range.count); continue }
            (pointer + range.lowerBound).update(repeating: 0, count: firstPage - range.lowerBound)
            (pointer + lastPage).update(repeating: 0, count: range.upperBound - lastPage)
            madvise(UnsafeMutableRawPointer(pointer + firstPage), (lastPage - firstPage) * 4, MADV_DONTNEED)
        }
    }

    /// Bytes of the buffer in memory now: its resident pages (mincore) when page-backed,
    /// all of it otherwise.
    public var residentBytes: Int {
        guard mappedBytes > 0 else { return count * 4 }
        let pages = mappedBytes / Self.pageSize
        var vector = [UInt8](repeating: 0, count: pages)
        guard mincore(UnsafeMutableRawPointer(pointer), mappedBytes, &vector) == 0 else { return count * 4 }
        return vector.reduce(0) { $0 + Int($1 & 1) } * Self.pageSize
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { if let base = $0.baseAddress { pointer.update(from: base, count: values.count) } }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        pointer.update(from: other.pointer, count: count)
    }
}

/// A named view into a buffer with a shape (row-major).
public struct Tensor {
    public let name: String
    public let shape: [Int]
    public let pointer: UnsafeMutablePointer<Float>
    public var count: Int { shape.reduce(1, *) }

    public init(name: String, shape: [Int], pointer: UnsafeMutablePointer<Float>) {
        self.name = name
        self.shape = shape
        self.pointer = pointer
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}
