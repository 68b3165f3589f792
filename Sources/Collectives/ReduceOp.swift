@_exported import struct Parallelism.BlockPartition
/// Element-wise reductions for Float32 buffers.
public enum ReduceOp: String, Sendable, CaseIterable {
    /// Sum; `average` is the sum divided by the group size once at the end.
    case sum, average, max, min

    /// `into[i] = into[i] ⊕ from[i]`, in that order of operands (it fixes rounding).
    @inline(__always)
    func combine(into target: UnsafeMutableBufferPointer<Float>, from source: UnsafeBufferPointer<Float>) {
        let n = target.count
        guard n > 0 else { return }
        let t = target.baseAddress!, s = source.baseAddress!
        switch self {
        case .sum, .average: for i in 0..<n { t[i] += s[i] }
        case .max: for i in 0..<n { t[i] = Swift.max(t[i], s[i]) }
        case .min: for i in 0..<n { t[i] = Swift.min(t[i], s[i]) }
        }
    }

    /// The same over raw memory: `bytes` bytes of floats at `target` and `source`.
    @inline(__always)
    func combine(into target: UnsafeMutableRawPointer, from source: UnsafeRawPointer, bytes: Int) {
        let count = bytes / MemoryLayout<Float>.stride
        combine(into: UnsafeMutableBufferPointer(start: target.assumingMemoryBound(to: Float.self), count: count),
                from: UnsafeBufferPointer(start: source.assumingMemoryBound(to: Float.self), count: count))
    }

    /// Applied once after the reduction: divides by the group size for `average`.
    func finish(_ buffer: UnsafeMutableBufferPointer<Float>, groupSize: Int) {
        guard self == .average, groupSize > 1 else { return }
        let divisor = Float(groupSize)
        for i in buffer.indices { buffer[i] /= divisor }
    }
}

extension UnsafeMutableBufferPointer where Element == Float {
    func slice(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: self[range])
    }

    var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(self) }
}
