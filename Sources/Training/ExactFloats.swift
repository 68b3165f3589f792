/// Whole numbers carried exactly through Float collectives (all-gathers, or sums where one
/// member contributes and the rest give zero): 16 bits per Float, least significant first.
enum ExactFloats {
    static func pieces(_ value: UInt64, count: Int = 4) -> [Float] {
        (0..<count).map { Float((value >> (16 * UInt64($0))) & 0xFFFF) }
    }

    static func value<C: Collection>(_ pieces: C) -> UInt64 where C.Element == Float {
        pieces.enumerated().reduce(0) { $0 | UInt64($1.element) << (16 * UInt64($1.offset)) }
    }
}
