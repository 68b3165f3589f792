import Engine
import Foundation
import Parallelism
import Workload

/// `fleet bench simulate`: the simulator's own speed and memory on large collectives and a
/// 405B-class step at flow-level fidelity, with closed forms where one exists.
public enum SimulatorBenchmark {
    /// One case: what was simulated, its simulated time (and closed form), the wall time and peak memory it took.
    public struct Result: Sendable {
        public let name: String
        public let ranks: Int
        public let simulated: SimTime
        public let closedForm: Double?
        public let wall: Double
        public let peakResidentMB: Double

        public var record: [(String, Any)] {
            [("case", name), ("ranks", ranks), ("fidelity", Fidelity.flow.rawValue), ("wall_s", wall), ("peak_rss_MB", peakResidentMB),
             ("simulated_s", simulated.seconds), ("closed_form_s", closedForm ?? Double.nan)]
        }

        public var line: String {
            var line = "  " + name.padding(toLength: 52, withPad: " ", startingAt: 0)
                + String(format: "%7d ranks  wall %7.3f s  peak RSS %6.0f MB  simulated ", ranks, wall, peakResidentMB) + simulated.description
            if let closedForm { line += String(format: "  (closed form %.6f s, error %.2e)", closedForm, abs(simulated.seconds - closedForm) / closedForm) }
            return line
        }
    }

    /// Runs every case in turn; `each` sees each result as it is made.
    public static func run(each: (Result) -> Void) {
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
        for c in cases {
            let start = ContinuousClock.now
            let (simulated, closed) = c.run()
            each(Result(name: c.name, ranks: c.ranks, simulated: simulated, closedForm: closed,
                        wall: (ContinuousClock.now - start).seconds, peakResidentMB: peakResidentMB()))
        }
    }

    /// The process's peak resident set so far (Linux reports kilobytes).
    public static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
