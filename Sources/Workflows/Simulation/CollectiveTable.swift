import Engine
import Foundation

/// Every all-reduce algorithm timed on a scenario's fabric over message sizes and group sizes
/// (one GPU per node, as a data-parallel group spans nodes), with where the ring overtakes
/// the binary tree: `fleet simulate FILE --collectives`.
public struct CollectiveTable {
    public struct Row {
        public let group: Int, bytes: Double
        public let times: [(algorithm: CollectiveModel.Algorithm, seconds: Double)]
        public var fastest: CollectiveModel.Algorithm { times.min { $0.seconds < $1.seconds }!.algorithm }
    }

    public let rows: [Row]
    /// Per group size, the message size above which the ring beats the tree (nil: never, in range).
    public let crossovers: [(group: Int, bytes: Double?)]

    public init(_ scenario: Scenario) {
        let fabric = scenario.fabric
        let model = CollectiveModel(network: scenario.fidelity == .flow ? FlowNetwork(fabric: fabric) as NetworkModel : AnalyticalNetwork(fabric: fabric))
        var groups: [Int] = []
        var n = 2
        while n < fabric.nodes { groups.append(n); n *= 4 }
        groups.append(fabric.nodes)
        groups = Array(Set(groups.filter { $0 >= 2 })).sorted()
        let sizes = stride(from: 10, through: 30, by: 4).map { pow(2.0, Double($0)) }
        var rows: [Row] = []
        var crossovers: [(Int, Double?)] = []
        for size in groups {
            let group = (0..<size).map { $0 * fabric.gpusPerNode }
            for bytes in sizes {
                rows.append(Row(group: size, bytes: bytes, times: CollectiveModel.Algorithm.concrete.map { ($0, model.allReduce(group, bytes: bytes, algorithm: $0).seconds) }))
            }
            crossovers.append((size, Self.crossover(model, group)))
        }
        self.rows = rows
        self.crossovers = crossovers
    }

    /// Where ring and tree take equally long, found by bisection on a log scale (1 B – 10¹² B).
    public static func crossover(_ model: CollectiveModel, _ group: [Int]) -> Double? {
        func ringFaster(_ bytes: Double) -> Bool { model.allReduce(group, bytes: bytes, algorithm: .ring) <= model.allReduce(group, bytes: bytes, algorithm: .tree) }
        var low = 1.0, high = 1e12
        guard !ringFaster(low), ringFaster(high) else { return ringFaster(low) ? 1 : nil }
        for _ in 0..<80 {
            let mid = (low * high).squareRoot()
            if ringFaster(mid) { high = mid } else { low = mid }
        }
        return high
    }

    public func lines() -> [String] {
        let algorithms = CollectiveModel.Algorithm.concrete
        let table = Table(columns: [("group", 6), ("size", 10)] + algorithms.map { ($0.rawValue, max(11, $0.rawValue.count)) } + [("fastest", 18)])
        var lines = ["all-reduce time by algorithm on this fabric (one GPU per node in each group)", table.header()]
        for row in rows {
            lines.append(table.row(["\(row.group)", Units.bytes(row.bytes)] + row.times.map { Self.time($0.seconds) } + [row.fastest.rawValue]))
        }
        for (group, bytes) in crossovers {
            let when = bytes.map { $0 <= 1 ? "at every size" : "above \(Units.bytes($0))" } ?? "at no size up to 1 TB"
            lines.append("ring overtakes tree over \(group) nodes \(when)")
        }
        return lines
    }

    /// `--json`: one document with every row and every group's crossover.
    public func document(_ scenario: Scenario) -> [(String, Any)] {
        [("scenario", scenario.name),
         ("rows", rows.map { row in [("group", row.group), ("bytes", row.bytes), ("fastest", row.fastest.rawValue)]
             + row.times.map { ("\($0.algorithm.rawValue)_s", $0.seconds) as (String, Any) } }),
         ("crossovers", crossovers.map { [("group", $0.group), ("ring_tree_crossover_bytes", $0.bytes ?? Double.nan)] as [(String, Any)] })]
    }

    static func time(_ seconds: Double) -> String {
        seconds >= 1 ? String(format: "%.2f s", seconds) : seconds >= 1e-3 ? String(format: "%.2f ms", seconds * 1e3) : String(format: "%.1f µs", seconds * 1e6)
    }
}
