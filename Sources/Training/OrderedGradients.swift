import FaultInjection
import Parallelism
import Tensor

/// Deterministic mode's gradient accumulation over micro-batches. Each micro-batch's
/// gradient is the partial sum over its node of the batch tree; it is packed (the ranges
/// this rank owns, then the output projection's part of the tied embedding) and joined with
/// its sibling as soon as both exist, so at most one buffer per tree level is alive.
///
/// Under the interleaved schedule a micro-batch's gradient is formed chunk by chunk, each
/// backward pass writing only its chunk's parameters: the pieces are copied into the node's
/// buffer as they come (copies, so the bits are those of one pass) and the node joins the
/// tree once every chunk has given its part.
final class OrderedGradients {
    let tree: ReductionTree
    let ranges: [Range<Int>]
    let headCount: Int
    let count: Int
    /// Per chunk, the ranges its backward pass forms, with their offsets in the packed buffer.
    private let pieces: [[(range: Range<Int>, offset: Int)]]
    private var nodes: [Range<Int>: FloatBuffer] = [:]
    /// Nodes still being formed, and how many chunks have given their part.
    private var forming: [Range<Int>: (buffer: FloatBuffer, chunks: Int)] = [:]
    private var spare: [FloatBuffer] = []

    /// `chunkSpans[c]`: the flat-buffer spans chunk c's backward pass writes (every range lies in one).
    init(tree: ReductionTree, ranges: [Range<Int>], headCount: Int, chunkSpans: [[Range<Int>]]) {
        self.tree = tree
        self.ranges = ranges
        self.headCount = headCount
        count = ranges.reduce(0) { $0 + $1.count } + headCount
        var offsets: [Int] = [], seen = 0
        for range in ranges { offsets.append(seen); seen += range.count }
        pieces = chunkSpans.map { spans in
            ranges.indices.filter { i in spans.contains { $0.contains(ranges[i].lowerBound) } }.map { (ranges[$0], offsets[$0]) }
        }
    }

    /// The chunk holding the output head (and so the tied head gradient): the last.
    private var headChunk: Int { pieces.count - 1 }

    /// Zeroes what a micro-batch's backward pass through `chunk` accumulates into.
    func clear(_ model: GPT, chunk: Int) {
        for (range, _) in pieces[chunk] { (model.gradients.pointer + range.lowerBound).update(repeating: 0, count: range.count) }
        if chunk == headChunk { model.tiedHeadGradient?.zero() }
    }

    /// Takes the model's gradient of `chunk`'s parameters as their partial sum over `node`
    /// (global sample indices).
    func add(node: Range<Int>, chunk: Int, from model: GPT) {
        var (buffer, given) = forming.removeValue(forKey: node) ?? (spare.popLast() ?? FloatBuffer(count: count), 0)
        for (range, offset) in pieces[chunk] {
            (buffer.pointer + offset).update(from: model.gradients.pointer + range.lowerBound, count: range.count)
        }
        if chunk == headChunk, let head = model.tiedHeadGradient {
            (buffer.pointer + count - headCount).update(from: head.pointer, count: headCount)
        }
        given += 1
        if given < pieces.count { forming[node] = (buffer, given) } else { insert(node, buffer) }
    }

    /// Takes `packed` (this accumulator's ranges, packed; it becomes the accumulator's) as the partial sum over `node`.
    func add(node: Range<Int>, packed: FloatBuffer) {
        precondition(packed.count == count && pieces.count == 1, "a packed node holds every range of a one-chunk accumulator")
        insert(node, packed)
    }

    private func insert(_ node: Range<Int>, _ buffer: FloatBuffer) {
        guard let parent = tree.parent(of: node), let (left, right) = tree.children(of: parent),
              let sibling = nodes.removeValue(forKey: node == left ? right : left) else {
            nodes[node] = buffer
            return
        }
        // left + right and right + left round the same: only the pairing matters.
        Elementwise.accumulate(buffer.pointer, sibling.pointer, count: count)
        spare.append(sibling)
        insert(parent, buffer)
    }

    /// The packed sum over `node`, once every micro-batch under it has been added.
    func total(of node: Range<Int>) -> FloatBuffer {
        guard nodes.count == 1, let buffer = nodes.removeValue(forKey: node) else {
            preconditionFailure("micro-batches \(nodes.keys.sorted { $0.lowerBound < $1.lowerBound }) do not make up node \(node)")
        }
        spare.append(buffer)
        return buffer
    }

    /// Fault injection: corrupts the gradient being accumulated (whichever node holds it).
    func corrupt(step: Int, injector: FaultInjector) {
        guard let buffer = nodes.values.first else { return }
        injector.corruptNumbers(step: step, parameters: false, buffer: buffer.pointer, ranges: [0..<count])
    }

    /// Writes a packed buffer back into the model's gradients.
    func unpack(_ buffer: FloatBuffer, into model: GPT) {
        var offset = 0
        for range in ranges {
            (model.gradients.pointer + range.lowerBound).update(from: buffer.pointer + offset, count: range.count)
            offset += range.count
        }
        if let head = model.tiedHeadGradient { head.pointer.update(from: buffer.pointer + offset, count: headCount) }
    }
}
