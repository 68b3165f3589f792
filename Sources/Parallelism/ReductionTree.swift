/// The one summation order of fleet's deterministic mode: a binary tree over `leaves`
/// (samples of a batch, or attention heads of a split matrix), each node split at its
/// midpoint. Floating-point addition is commutative but not associative, so fixing the
/// tree's shape fixes every rounding: a layout whose ranks each hold one node's partial
/// sum can combine them into exactly the bits of the single-process sum.
public struct ReductionTree: Sendable, Hashable {
    public let leaves: Int

    public init(leaves: Int) {
        precondition(leaves > 0, "a reduction tree needs at least one leaf")
        self.leaves = leaves
    }

    public var root: Range<Int> { 0..<leaves }

    /// The two halves of `node` (the left one takes the smaller half), or nil for a leaf.
    public func children(of node: Range<Int>) -> (left: Range<Int>, right: Range<Int>)? {
        guard node.count > 1 else { return nil }
        let middle = node.lowerBound + node.count / 2
        return (node.lowerBound..<middle, middle..<node.upperBound)
    }

    /// Whether `range` is a node of the tree.
    public func contains(node range: Range<Int>) -> Bool {
        var node = root
        while node != range {
            guard let (left, right) = children(of: node), !range.isEmpty else { return false }
            if right.contains(range.lowerBound) { node = right } else { node = left }
            guard node.lowerBound <= range.lowerBound, range.upperBound <= node.upperBound else { return false }
        }
        return true
    }

    /// The node whose child `node` is (nil for the root or a range that is not a node).
    public func parent(of node: Range<Int>) -> Range<Int>? {
        var current = root, above: Range<Int>? = nil
        while current != node {
            guard let (left, right) = children(of: current), !node.isEmpty else { return nil }
            above = current
            current = right.contains(node.lowerBound) ? right : left
            guard current.lowerBound <= node.lowerBound, node.upperBound <= current.upperBound else { return nil }
        }
        return above
    }

    /// Whether cutting the leaves into `parts` equal contiguous parts gives nodes of the tree,
    /// i.e. whether `parts` holders of one part each can reproduce the whole sum exactly.
    public func isAligned(parts: Int) -> Bool {
        guard parts > 0, leaves % parts == 0 else { return false }
        let size = leaves / parts
        return (0..<parts).allSatisfy { contains(node: ($0 * size)..<(($0 + 1) * size)) }
    }

    /// Sums the subtree at `node` into `out` (`count` floats). `value(n, buffer)` writes the
    /// value of node `n` into `buffer` and returns true when it knows it (a leaf must be known);
    /// otherwise the two children are summed and added, left + right. `scratch(level)`
    /// supplies a buffer of `count` floats for each recursion level below `node`. With
    /// `leftFold`, every node splits off its last leaf instead (a different order, for tests).
    public func sum(_ node: Range<Int>, into out: UnsafeMutablePointer<Float>, count: Int,
                    value: (Range<Int>, UnsafeMutablePointer<Float>) -> Bool,
                    scratch: (Int) -> UnsafeMutablePointer<Float>,
                    add: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void = ReductionTree.add,
                    leftFold: Bool = false, level: Int = 0) {
        if value(node, out) { return }
        guard var (left, right) = children(of: node) else { preconditionFailure("leaf \(node.lowerBound) has no value") }
        if leftFold { (left, right) = (node.lowerBound..<(node.upperBound - 1), (node.upperBound - 1)..<node.upperBound) }
        sum(left, into: out, count: count, value: value, scratch: scratch, add: add, leftFold: leftFold, level: level + 1)
        let other = scratch(level)
        sum(right, into: other, count: count, value: value, scratch: scratch, add: add, leftFold: leftFold, level: level + 1)
        add(out, other, count)
    }

    /// `out += other`, element by element.
    public static func add(_ out: UnsafeMutablePointer<Float>, _ other: UnsafePointer<Float>, _ count: Int) {
        for i in 0..<count { out[i] += other[i] }
    }
}
