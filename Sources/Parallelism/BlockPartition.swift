/// Splits `count` elements into `parts` contiguous blocks whose sizes differ by at most one
/// (the first `count % parts` blocks get the extra element).
public struct BlockPartition: Sendable {
    public let count: Int
    public let parts: Int

    public init(count: Int, parts: Int) {
        self.count = count
        self.parts = parts
    }

    public func range(_ part: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + Swift.min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }

    public var largest: Int { (count + parts - 1) / parts }
}
