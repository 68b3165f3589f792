import Collectives

extension DistributedTrainer {
    /// Where the world's ranks run: how many distinct hosts (as the transport tells them apart,
    /// so two network namespaces of one machine count as two) and how many rank pairs talk over
    /// each path (`shm`, `tcp`, `ipc`, …, as the lower rank of the pair sends).
    func gatherPlacement() throws -> (hosts: Int, paths: [String: Int]) {
        let n = transport.worldSize
        guard n > 1 else { return (1, [:]) }
        let hosts = Set((0..<n).map { transport.host(of: $0) ?? "" }).count
        // Each rank knows its own path to each peer; the world gathers them.
        let kinds = ["shm", "tcp", "ipc", "local", "network", "mpi"]
        var mine = [Float](repeating: 0, count: n)
        for peer in 0..<n where peer != transport.rank {
            mine[peer] = Float(kinds.firstIndex(of: transport.path(to: peer)).map { $0 + 1 } ?? 0)
        }
        var all = [Float](repeating: 0, count: n * n)
        try mine.withUnsafeBufferPointer { input in try all.withUnsafeMutableBufferPointer { try groups.world.allGather(input, into: $0) } }
        var paths: [String: Int] = [:]
        for a in 0..<n {
            for b in (a + 1)..<n {
                let code = Int(all[a * n + b])
                paths[code > 0 ? kinds[code - 1] : "other", default: 0] += 1
            }
        }
        return (hosts, paths)
    }
}
