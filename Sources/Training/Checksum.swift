/// FNV-1a, 64-bit: a fast checksum of exact bit patterns (run records compare runs with it;
/// it is not a defence against deliberate tampering).
public enum Checksum {
    public static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x100_0000_01b3

    /// Folds the bits of `count` floats into `hash`.
    public static func fnv1a(_ values: UnsafePointer<Float>, count: Int, _ hash: UInt64 = fnvOffset) -> UInt64 {
        var h = hash
        for i in 0..<count {
            let bits = values[i].bitPattern
            for byte in 0..<4 { h = (h ^ UInt64((bits >> (8 * UInt32(byte))) & 0xFF)) &* prime }
        }
        return h
    }

    /// Folds a 64-bit value into `hash`, byte by byte.
    @inline(__always)
    public static func fnv1a(_ value: UInt64, _ hash: UInt64) -> UInt64 {
        var h = hash
        for byte in 0..<8 { h = (h ^ ((value >> (8 * UInt64(byte))) & 0xFF)) &* prime }
        return h
    }
}
