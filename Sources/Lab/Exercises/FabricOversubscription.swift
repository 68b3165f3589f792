import Engine
import Foundation
import Workflows

/// The same GPT-3 step on fat-trees with less and less bandwidth above the leaves.
struct FabricOversubscription: Exercise {
    let id = "fabric-oversubscription"
    let chapter = "Network Fabrics"
    let title = "Oversubscribed fat-trees: which all-reduce feels a 4:1 leaf, and why the ring does not"
    let minutes = 25
    let needs = "simulator (flow level)"
    let background = """
        A fat-tree leaf with d ports down and u up is oversubscribed d:u; flows leaving a leaf share u/d of the
        bandwidth they could have, and the bisection bandwidth falls by the same factor. Whether a collective
        slows depends on how much of its traffic leaves the leaf at once. A ring over nodes in order talks to
        its neighbours: only the ring's few leaf-boundary hops go up. Halving-doubling exchanges with partners
        2^k ranks away: in its later rounds every rank's traffic crosses leaves together.
        Setup: Llama 3 8B on 128 nodes × 8 H100 (1,024 GPUs), tp8 · dp128, 128 sequences of 4,096 tokens,
        ZeRO-1, radix-64 two-tier fat-tree (4 nodes per leaf), flow-level simulation (links shared max–min fair).
        """
    let questions = [
        Question("bisection-fraction", "Bisection bandwidth at 4:1 as a fraction of 1:1", unit: "fraction",
                 hint: "Only the up-links cross the bisection."),
        Question("ring-slowdown-4to1", "Step time with a ring data-parallel all-reduce, 4:1 ÷ 1:1", unit: "ratio", tolerance: 0.05,
                 hint: "Count the ring's hops that leave a leaf, and the up-links each leaf still has."),
        Question("hd-slowdown-4to1", "Step time with halving-doubling, 4:1 ÷ 1:1", unit: "ratio", tolerance: 0.1,
                 hint: "At 1:1 it matches the ring; at 4:1 its cross-leaf rounds share a quarter of the up-links."),
    ]
    let stretch = "Which collective of a mixture-of-experts layer would suffer most from oversubscription, and why do rail-optimized fabrics give each GPU's NIC its own rail?"
    let ratios: [Double] = [1, 2, 4, 8]
    let algorithms = ["ring", "halving-doubling"]

    func yaml(_ ratio: Double, _ algorithm: String) -> String {
        Simulated.cluster(nodes: 128, oversubscription: ratio) + """

            workload: {model: llama-8b, batch: 128, sequence: 4096, precision: bf16, efficiency: 0.55}
            layout: {dp: 128, tp: 8, pp: 1, microbatches: 1, zero: 1}
            collectives: {data_parallel: \(algorithm), tensor_parallel: ring, bucket: 25 MB}
            fidelity: flow
            """
    }

    func commands(quick: Bool) -> [String] {
        ["fleet simulate SCENARIO.yaml   # the setup above with sweep: {fabric.oversubscription: [1, 2, 4, 8], collectives.data_parallel: [ring, halving-doubling]}"]
    }

    /// Step reports per algorithm, per oversubscription.
    func steps() throws -> [[StepReport]] {
        try algorithms.map { a in try ratios.map { try Simulated.step(yaml($0, a), name: "llama-8b \(a) at \($0):1").1 } }
    }

    func solve() throws -> [String: Double] { answers(try steps()) }

    func answers(_ r: [[StepReport]]) -> [String: Double] {
        ["bisection-fraction": 1 / 4.0, "ring-slowdown-4to1": r[0][2].stepTime.seconds / r[0][0].stepTime.seconds,
                "hd-slowdown-4to1": r[1][2].stepTime.seconds / r[1][0].stepTime.seconds]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let reports = try steps()
        var outcome = LabOutcome()
        let table = Table(columns: [("leaf", 6), ("ring step", 11), ("dp exposed", 11), ("h-d step", 11), ("dp exposed", 11)])
        outcome.table = ["Llama 3 8B on 1,024 H100 (tp8·dp128), flow-level fat-tree, by leaf oversubscription", table.header()]
        for (i, ratio) in ratios.enumerated() {
            outcome.table.append(table.row(["\(Int(ratio)):1"] + reports.flatMap { [Show.ms($0[i].stepTime.seconds), Show.ms($0[i].breakdown.dataParallelExposed.seconds)] }))
        }
        outcome.figures = [("oversubscription.svg", SVGChart.lines(title: "Llama 3 8B step time by leaf oversubscription", unit: "ms per step",
                                                                   labels: ratios.map { "\(Int($0)):1" },
                                                                   series: zip(algorithms, ["#4878a8", "#d08040"]).enumerated().map { k, pair in
                                                                       (pair.0, pair.1, reports[k].map { $0.stepTime.seconds * 1000 })
                                                                   }))]
        outcome.answers = answers(reports)
        outcome.record = [("oversubscription", ratios), ("ring_step_s", reports[0].map(\.stepTime.seconds)),
                          ("halving_doubling_step_s", reports[1].map(\.stepTime.seconds))]
        return outcome
    }
}
