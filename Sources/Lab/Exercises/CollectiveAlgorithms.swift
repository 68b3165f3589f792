import Engine
import Foundation
import Workflows

/// Ring, tree and halving-doubling across a simulated fabric: where latency stops mattering.
struct CollectiveAlgorithms: Exercise {
    let id = "collective-algorithms"
    let chapter = "Collective Communication"
    let title = "Ring vs tree vs halving-doubling: the latency–bandwidth crossover at 64 nodes"
    let minutes = 25
    let needs = "simulator"
    let background = """
        Over n ranks with per-hop latency α and bandwidth β:
          ring              t ≈ 2(n−1)·α + 2(n−1)/n · S/β     (bandwidth-optimal, latency linear in n)
          binary tree       t ≈ 2·log2(n)·(α + S/β)           (reduce up, broadcast down: few steps, whole message each)
          halving-doubling  t ≈ 2·log2(n)·α + 2(n−1)/n · S/β   (both optimal, but needs n a power of two)
        Small messages are latency-bound (tree and halving-doubling win); large ones bandwidth-bound (ring
        and halving-doubling win). The experiment prices each on fleet's model of a 64-node fat-tree with
        400 Gb/s links, one GPU per node in the group — the data-parallel ring of a real job.
        """
    let questions = [
        Question("ring-1gib", "Seconds for a ring all-reduce of 1 GiB over 64 nodes (400 Gb/s links, 1 µs per hop)", unit: "s",
                 tolerance: 0.1, hint: "2(n−1)/n · S/β dominates; β = 50 GB/s. Add the 126 steps' latency across the fabric."),
        Question("ring-over-tree-4kib", "Ring time ÷ tree time for 4 KiB over 64 nodes", unit: "ratio", tolerance: 0.3,
                 hint: "At 4 KiB latency dominates: compare 2(n−1) hops with 2·log2(n)."),
        Question("crossover-bytes", "The message size above which ring beats tree over 64 nodes", unit: "bytes", tolerance: 1.0,
                 hint: "Set the ring and tree formulas equal and solve for S (within a factor of two passes)."),
    ]
    let stretch = "Rerun the sweep with 1,024 nodes (edit the scenario): how far does the crossover move, and why does NCCL switch algorithms by size?"

    func commands(quick: Bool) -> [String] {
        ["fleet lab run collective-algorithms   # prices each algorithm on the model fleet simulate uses (no single command)"]
    }

    func model() throws -> (CollectiveModel, [Int]) {
        let scenario = try Simulated.scenario(Simulated.cluster(nodes: 64) + "\nworkload: {model: gpt-tiny, batch: 512, sequence: 128}\nlayout: {dp: 512}\n",
                                              name: "64-node fat-tree")
        return (CollectiveModel(network: AnalyticalNetwork(fabric: scenario.fabric)), (0..<64).map { $0 * 8 })
    }

    func solve() throws -> [String: Double] {
        let (model, group) = try model()
        return answers(model, group)
    }

    func answers(_ model: CollectiveModel, _ group: [Int]) -> [String: Double] {
        let gib = 1024.0 * 1024 * 1024
        return ["ring-1gib": model.allReduce(group, bytes: gib, algorithm: .ring).seconds,
                "ring-over-tree-4kib": model.allReduce(group, bytes: 4096, algorithm: .ring).seconds / model.allReduce(group, bytes: 4096, algorithm: .tree).seconds,
                "crossover-bytes": CollectiveTable.crossover(model, group) ?? .nan]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let (model, group) = try model()
        var outcome = LabOutcome()
        let sizes = stride(from: 10, through: 30, by: 2).map { pow(2.0, Double($0)) }
        let algorithms: [CollectiveModel.Algorithm] = [.ring, .tree, .halvingDoubling]
        let times = algorithms.map { a in sizes.map { model.allReduce(group, bytes: $0, algorithm: a).seconds } }
        let table = Table(columns: [("size", 10), ("ring", 12), ("tree", 12), ("halving-doubling", 16), ("fastest", 16)])
        outcome.table = ["all-reduce over 64 nodes (one GPU each), 400 Gb/s fat-tree, fleet's analytical model", table.header()]
        for (i, size) in sizes.enumerated() {
            let best = algorithms.indices.min { times[$0][i] < times[$1][i] }!
            outcome.table.append(table.row([Show.bytes(size)] + times.map { Show.ms($0[i]) } + [algorithms[best].rawValue]))
        }
        outcome.answers = answers(model, group)
        outcome.table.append("ring overtakes tree above \(Show.bytes(outcome.answers["crossover-bytes"]!))")
        outcome.figures = [("algorithms.svg", SVGChart.lines(title: "all-reduce time over 64 nodes by algorithm", unit: "ms (log scale)",
                                                             labels: sizes.map { Show.bytes($0) },
                                                             series: zip(algorithms, ["#4878a8", "#d08040", "#50a050"]).enumerated().map { k, pair in
                                                                 (pair.0.rawValue, pair.1, times[k].map { $0 * 1000 })
                                                             }, logarithmic: true))]
        outcome.record = [("sizes", sizes)] + zip(algorithms, times).map { ("\($0.0.rawValue)_s", $0.1) as (String, Any) }
        return outcome
    }
}
