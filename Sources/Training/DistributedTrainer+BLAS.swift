import Tensor

extension DistributedTrainer {
    /// Every rank's BLAS kernel, by rank. Ranks are expected to agree (workers inherit the
    /// launcher's choice); where they do not — hosts with different CPUs — results differ in
    /// the last bits between ranks, which the run's summary shows.
    func gatherBLASKernels() throws -> [String] {
        let width = 32
        var mine = [Float](repeating: 0, count: width)
        for (i, byte) in BLAS.coreName.utf8.prefix(width).enumerated() { mine[i] = Float(byte) }
        guard transport.worldSize > 1 else { return [BLAS.coreName] }
        var all = [Float](repeating: 0, count: width * transport.worldSize)
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try groups.world.allGather(input, into: $0) } }
        return (0..<transport.worldSize).map { rank in
            let bytes = all[(rank * width)..<((rank + 1) * width)].prefix { $0 != 0 }.map { UInt8($0) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
