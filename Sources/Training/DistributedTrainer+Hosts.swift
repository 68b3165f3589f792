import Collectives

extension DistributedTrainer {
    /// Where the world's ranks run: how many distinct hosts (by `WorldSetup.hostIdentity`, so
    /// two network namespaces of one machine count as two) and how many rank pairs talk over
    /// each path (`shm`, `tcp`, `ipc`, …, as the lower rank of the pair sends).
    func gatherPlacement() throws -> (hosts: Int, paths: [String: Int]) {
        let n = transport.worldSize
        guard n > 1 else { return (1, [:]) }
        let kinds = ["shm", "tcp", "ipc", "local", "network", "mpi"]
        // Per rank: its host as four 16-bit pieces of a 64-bit hash (exact in floats), then its path to each peer.
        var mine = [Float](repeating: 0, count: 4 + n)
        let hash = WorldSetup.hostIdentity.utf8.reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
        for piece in 0..<4 { mine[piece] = Float((hash >> (16 * UInt64(piece))) & 0xFFFF) }
        for peer in 0..<n where peer != transport.rank {
            mine[4 + peer] = Float(kinds.firstIndex(of: transport.path(to: peer)).map { $0 + 1 } ?? 0)
        }
        var all = [Float](repeating: 0, count: mine.count * n)
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try groups.world.allGather(input, into: $0) } }
        let width = mine.count
        let hosts = Set((0..<n).map { Array(all[($0 * width)..<($0 * width + 4)]) }).count
        var paths: [String: Int] = [:]
        for a in 0..<n {
            for b in (a + 1)..<n {
                let code = Int(all[a * width + 4 + b])
                paths[code > 0 ? kinds[code - 1] : "other", default: 0] += 1
            }
        }
        return (hosts, paths)
    }
}
