import FaultInjection
import Parallelism
import Tensor

/// Deterministic mode's gradient accumulation over micro-batches. Each micro-batch's
/// gradient is the partial sum over its node of the batch tree; it is packed (the ranges
/// this rank owns, then the output projection's part of the tied embedding) and joined with
/// its sibling as soon as both exist, so at most one buffer per tree level is alive.
final class OrderedGradients {
    let tree: ReductionTree
    let ranges: [Range<Int>]
    let headCount: Int
    let count: Int
    private var nodes: [Range<Int>: FloatBuffer] = [:]
    private var spare: [FloatBuffer] = []

    init(tree: ReductionTree, ranges: [Range<Int>], headCount: Int) {
        self.tree = tree
        self.ranges = ranges
        self.headCount = headCount
        count = ranges.reduce(0) { $0 + $1.count } + headCount
    }

    /// Zeroes what a micro-batch's backward pass accumulates into.
    func clear(_ model: GPT) {
        for range in ranges { (model.gradients.pointer + range.lowerBound).update(repeating: 0, count: range.count) }
        model.tiedHeadGradient?.zero()
    }

    /// Takes the model's gradient as the partial sum over `node` (global sample indices).
    func add(node: Range<Int>, from model: GPT) {
        let buffer = spare.popLast() ?? FloatBuffer(count: count)
        var offset = 0
        for range in ranges {
            (buffer.pointer + offset).update(from: model.gradients.pointer + range.lowerBound, count: range.count)
            offset += range.count
        }
        if let head = model.tiedHeadGradient { (buffer.pointer + offset).update(from: head.pointer, count: headCount) }
        insert(node, buffer)
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
