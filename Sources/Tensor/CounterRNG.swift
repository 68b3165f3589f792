import Foundation

/// A stateless, counter-based generator: each value is a hash of (seed, stream, index).
///
/// Streams are keyed by what they draw for — a parameter's name, a token position — never
/// by who draws, so a tensor split across ranks gets the same values as in one process.
public struct CounterRNG: Sendable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// A stream id for a name (FNV-1a, stable across runs and platforms).
    public static func stream(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// 64 random bits for (stream, index): SplitMix64's finaliser over a keyed counter.
    @inline(__always)
    public func bits(stream: UInt64, index: UInt64) -> UInt64 {
        var z = seed &* 0x9E37_79B9_7F4A_7C15 ^ stream &+ index &* 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        // A second round decorrelates neighbouring counters of nearby streams.
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return z ^ (z >> 33)
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public func uniform(stream: UInt64, index: UInt64) -> Double {
        Double(bits(stream: stream, index: index) >> 11) * 0x1p-53
    }

    /// Standard normal (Box–Muller over two counters).
    public func normal(stream: UInt64, index: UInt64) -> Float {
        let u1 = max(uniform(stream: stream, index: 2 &* index), 1e-300)
        let u2 = uniform(stream: stream, index: 2 &* index &+ 1)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
