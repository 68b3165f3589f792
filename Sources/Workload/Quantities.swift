/// A number of bytes (a buffer, a message, memory). The step plan hands sizes to the trainer,
/// the simulator and `fleet plan` in this type, so a byte count cannot be mistaken for an
/// element count or a FLOP count where it crosses a module. JSON: a plain number.
public struct Bytes: Sendable, Hashable, Comparable, Codable, AdditiveArithmetic, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var count: Int

    public init(_ count: Int) { self.count = count }
    public init(integerLiteral count: Int) { self.count = count }
    /// `elements` values of `bytesPerElement` bytes each.
    public init(elements: Int, of bytesPerElement: Int) { count = elements * bytesPerElement }

    public static let zero = Bytes(0)
    public static func + (a: Bytes, b: Bytes) -> Bytes { Bytes(a.count + b.count) }
    public static func - (a: Bytes, b: Bytes) -> Bytes { Bytes(a.count - b.count) }
    public static func * (a: Bytes, n: Int) -> Bytes { Bytes(a.count * n) }
    public static func < (a: Bytes, b: Bytes) -> Bool { a.count < b.count }

    /// As a floating-point number of bytes, for rates and models.
    public var value: Double { Double(count) }
    public var mebibytes: Double { Double(count) / 1_048_576 }
    public var description: String { "\(count) B" }

    public init(from decoder: Decoder) throws { count = try decoder.singleValueContainer().decode(Int.self) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(count)
    }
}

/// A number of floating-point operations (a multiply-add counts two), as the plan hands work
/// to the simulator and to MFU figures. JSON: a plain number.
public struct FLOPs: Sendable, Hashable, Comparable, Codable, AdditiveArithmetic, CustomStringConvertible {
    public var count: Double

    public init(_ count: Double) { self.count = count }

    public static let zero = FLOPs(0)
    public static func + (a: FLOPs, b: FLOPs) -> FLOPs { FLOPs(a.count + b.count) }
    public static func - (a: FLOPs, b: FLOPs) -> FLOPs { FLOPs(a.count - b.count) }
    public static func * (a: FLOPs, n: Double) -> FLOPs { FLOPs(a.count * n) }
    public static func < (a: FLOPs, b: FLOPs) -> Bool { a.count < b.count }

    /// Seconds this work takes at `rate` FLOP/s.
    public func seconds(at rate: Double) -> Double { count / rate }
    public var gigaFLOPs: Double { count / 1e9 }
    public var description: String { "\(count) FLOP" }

    public init(from decoder: Decoder) throws { count = try decoder.singleValueContainer().decode(Double.self) }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(count)
    }
}
