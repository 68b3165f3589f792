
/// Byte counts written (command-line and scenario style) as `4096`, `4KiB`, `64MiB`, `1GiB` (K, M, G are binary too).
public struct ByteSize: Sendable, CustomStringConvertible, Equatable {
    public let bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    public init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces)
        let digits = text.prefix { $0.isNumber }
        guard let value = Int(digits) else { return nil }
        let multipliers: [String: Int] = ["": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
                                          "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
                                          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30]
        guard let multiplier = multipliers[text.dropFirst(digits.count).lowercased()] else { return nil }
        bytes = value * multiplier
    }

    public var description: String {
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)B"
    }
}

/// A list of sizes: `64MiB`, `4KiB:256MiB` (doubling), or a comma-separated mix of both.
public struct SizeList: Sendable {
    public let sizes: [ByteSize]

    public init?(argument: String) {
        var sizes: [ByteSize] = []
        for part in argument.split(separator: ",") {
            let ends = part.split(separator: ":").map(String.init)
            if ends.count == 1, let size = ByteSize(argument: ends[0]) {
                sizes.append(size)
            } else if ends.count == 2, let low = ByteSize(argument: ends[0]), let high = ByteSize(argument: ends[1]),
                      low.bytes > 0, low.bytes <= high.bytes {
                var size = low.bytes
                while size <= high.bytes { sizes.append(ByteSize(bytes: size)); size *= 2 }
            } else {
                return nil
            }
        }
        guard !sizes.isEmpty else { return nil }
        self.sizes = sizes
    }

    /// As a user would write it: `4KiB:64MiB` for a doubling range, else a comma list.
    public var defaultValueDescription: String {
        let doubling = sizes.count > 2 && zip(sizes, sizes.dropFirst()).allSatisfy { $1.bytes == 2 * $0.bytes }
        return doubling ? "\(sizes[0]):\(sizes[sizes.count - 1])" : sizes.map(\.description).joined(separator: ",")
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}

extension Set where Element == Character {
    static let whitespaces: Set<Character> = [" ", "\t"]
}
