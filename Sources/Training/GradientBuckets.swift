import Collectives
import Tensor

/// Data-parallel gradient averaging in buckets that start as soon as their gradients are
/// final, so the all-reduces overlap the rest of the backward pass.
///
/// Buckets cover this rank's owned ranges from the top of the flat buffer down, the order
/// in which the backward pass finalises them (head, last layer, …, first layer,
/// embeddings). Every rank of the dp group owns the same ranges, so all start the same
/// buckets in the same order.
final class GradientBuckets {
    let buckets: [Range<Int>]
    private let group: Communicator
    private let gradients: UnsafeMutablePointer<Float>
    private var started = 0
    private var active: [RingOperation] = []
    private(set) var floats = 0

    init(owned: [Range<Int>], bucketFloats: Int, group: Communicator, gradients: UnsafeMutablePointer<Float>) {
        var buckets: [Range<Int>] = []
        for range in owned.sorted(by: { $0.lowerBound > $1.lowerBound }) {
            var top = range.upperBound
            while top > range.lowerBound {
                let bottom = max(range.lowerBound, top - bucketFloats)
                buckets.append(bottom..<top)
                top = bottom
            }
        }
        self.buckets = buckets
        self.group = group
        self.gradients = gradients
    }

    /// Starts every bucket lying wholly at or above `offset`, then advances those in flight.
    func finalized(from offset: Int) throws {
        while started < buckets.count && buckets[started].lowerBound >= offset {
            let bucket = buckets[started]
            active.append(try group.startAllReduce(UnsafeMutableBufferPointer(start: gradients + bucket.lowerBound, count: bucket.count)))
            floats += bucket.count
            started += 1
        }
        for operation in active { try operation.advance() }
    }

    /// Starts what is left and waits for all; returns the all-reduces and floats of the step.
    func finish() throws -> (allReduces: Int, floats: Int) {
        try finalized(from: Int.min)
        for operation in active { try operation.finish() }
        active.removeAll()
        defer { started = 0; floats = 0 }
        return (started, floats)
    }
}
