import CFleetSys

/// CRC-32C (Castagnoli), the checksum of checkpoint shards: the CPU's CRC32 instruction
/// where it exists (SSE4.2), else a table. `bitwise` is the slow, obviously correct
/// oracle the tests hold both to.
public enum CRC32C {
    static let hardware = fleet_has_crc32c_instruction() != 0
    static let polynomial: UInt32 = 0x82F6_3B78   // reflected 0x1EDC6F41

    private static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
        return crc
    }

    /// The checksum of `bytes`, continuing from `crc` (the checksum of what came before).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return crc }
        var c = ~crc
        if hardware {
            c = fleet_crc32c_update(c, base, bytes.count)
        } else {
            table.withUnsafeBufferPointer { t in
                for i in 0..<bytes.count { c = t[Int((c ^ UInt32(base[i])) & 0xFF)] ^ (c >> 8) }
            }
        }
        return ~c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Bit by bit, straight from the definition.
    public static func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
        }
        return ~crc
    }
}
