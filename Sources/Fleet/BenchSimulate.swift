import ArgumentParser
import Engine
import Foundation
import Parallelism
import Workload

struct BenchSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Time the simulator itself: large collectives and a full 405B-class training step, with wall time and memory.",
        discussion: """
        Targets (issue #9): a 1 GiB ring all-reduce over 4,096 ranks ≤ 0.5 s and ≤ 200 MB, over 100,000 ranks ≤ 5 s and ≤ 1 GB;
        one step of a 405B-class model on 16,384 GPUs (tp8·pp16·dp128) ≤ 10 s and ≤ 2 GB. Flow-level fidelity throughout.
          fleet bench simulate
          fleet bench simulate --json
        """)

    @Flag(help: "One JSON object per case.")
    var json = false

    func run() throws {
        try Console.reportingErrors {
            let nic = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))
            let nvlink = Link(bandwidth: .gigabytesPerSecond(450), latency: SimTime(seconds: 2e-6))
            let gib = 1_073_741_824.0
            var cases: [(name: String, ranks: Int, run: () -> (SimTime, Double?))] = []
            // A flat ring on one switch: every route is 2 links, so the closed form is exact.
            cases.append(("ring all-reduce 1 GiB, single switch", 4096, {
                let fabric = Fabric(gpus: 4096, gpusPerNode: 1, topology: .singleSwitch, scaleUp: nic, scaleOut: nic)
                let n = 4096.0, alpha = 2 * nic.latency.seconds, beta = nic.bandwidth.bytesPerSecond
                let time = CollectiveModel(network: FlowNetwork(fabric: fabric)).allReduce(Array(0..<4096), bytes: gib)
                return (time, 2 * (n - 1) / n * gib / beta + 2 * (n - 1) * alpha)
            }))
            for ranks in [4096, 100_000] {
                cases.append(("ring all-reduce 1 GiB, 3-tier fat-tree, 8 GPUs/node", ranks, {
                    let fabric = Fabric(gpus: ranks, gpusPerNode: 8, topology: .fatTree(radix: 128, tiers: 3, oversubscription: 1),
                                        scaleUp: nvlink, scaleOut: nic)
                    return (CollectiveModel(network: FlowNetwork(fabric: fabric)).allReduce(Array(0..<ranks), bytes: gib), nil)
                }))
            }
            cases.append(("training step, llama-405b tp8·pp16·dp128", 16_384, {
                var scenario = Scenario(name: "bench", device: DeviceCatalog.h100, nodes: 2048, gpusPerNode: 8,
                                        topology: .fatTree(radix: 64, tiers: 3, oversubscription: 1), scaleUp: nvlink, scaleOut: nic,
                                        model: ModelCatalog.llama405B, batch: 2048, sequence: 8192,
                                        layout: ParallelLayout(dp: 128, tp: 8, pp: 16, microbatches: 16))
                scenario.fidelity = .flow
                scenario.zero = 1
                scenario.recompute = .full
                return (StepSimulator(scenario: scenario).run().stepTime, nil)
            }))
            if !json { Console.out("fleet bench simulate: flow-level fidelity (max–min fair sharing), this machine") }
            for c in cases {
                let start = ContinuousClock.now
                let (simulated, closed) = c.run()
                let wall = (ContinuousClock.now - start).seconds
                let rss = Self.peakResidentMB()
                if json {
                    Console.json([("case", c.name), ("ranks", c.ranks), ("fidelity", Fidelity.flow.rawValue), ("wall_s", wall), ("peak_rss_MB", rss),
                                  ("simulated_s", simulated.seconds), ("closed_form_s", closed ?? Double.nan)])
                } else {
                    var line = "  " + c.name.padding(toLength: 52, withPad: " ", startingAt: 0)
                        + String(format: "%7d ranks  wall %7.3f s  peak RSS %6.0f MB  simulated ", c.ranks, wall, rss) + simulated.description
                    if let closed { line += String(format: "  (closed form %.6f s, error %.2e)", closed, abs(simulated.seconds - closed) / closed) }
                    Console.out(line)
                }
            }
        }
    }

    /// The process's peak resident set so far (Linux reports kilobytes).
    static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
