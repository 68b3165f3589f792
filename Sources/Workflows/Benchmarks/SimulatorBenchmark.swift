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
        /// Full fidelity: the symmetric reduction's step of the same scenario, which it must reproduce.
        public var symmetric: SimTime? = nil

        public var record: [(String, Any)] {
            [("case", name), ("ranks", ranks), ("fidelity", Fidelity.flow.rawValue), ("wall_s", wall), ("peak_rss_MB", peakResidentMB),
             ("simulated_s", simulated.seconds), ("closed_form_s", closedForm ?? Double.nan)]
                + (symmetric.map { [("symmetric_s", $0.seconds), ("reproduces_symmetric", $0 == simulated)] } ?? [])
        }

        public var line: String {
            var line = "  " + name.padding(toLength: 60, withPad: " ", startingAt: 0)
                + String(format: "%7d ranks  wall %7.3f s  peak RSS %6.0f MB  simulated ", ranks, wall, peakResidentMB) + simulated.description
            if let closedForm { line += String(format: "  (closed form %.6f s, error %.2e)", closedForm, abs(simulated.seconds - closedForm) / closedForm) }
            if let symmetric { line += symmetric == simulated ? "  (= the symmetric step)" : "  (symmetric step \(symmetric): DIFFERS)" }
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
        // A 405B-class step at 16,384 and 100,352 GPUs: one pipeline standing for all (the
        // symmetric reduction), then every pipeline simulated (full fidelity), which must agree.
        for (nodes, dp, batch, microbatches, radix) in [(2048, 128, 2048, 16, 64), (12544, 784, 6272, 8, 128)] {
            var scenario = Scenario(name: "bench", device: DeviceCatalog.h100, nodes: nodes, gpusPerNode: 8,
                                    topology: .fatTree(radix: radix, tiers: 3, oversubscription: 1), scaleUp: nvlink, scaleOut: nic,
                                    model: ModelCatalog.llama405B, batch: batch, sequence: 8192,
                                    layout: ParallelLayout(dp: dp, tp: 8, pp: 16, microbatches: microbatches))
            scenario.fidelity = .flow
            scenario.zero = 1
            scenario.recompute = .full
            let name = "training step, llama-405b tp8·pp16·dp\(dp)"
            cases.append((name + ", symmetric", nodes * 8, { (StepSimulator(scenario: scenario).run().stepTime, nil) }))
            cases.append((name + ", every pipeline", nodes * 8, { (StepSimulator(scenario: scenario).runEveryPipeline().stepTime, nil) }))
        }
        var results: [Result] = []
        for c in cases {
            let start = ContinuousClock.now
            let (simulated, closed) = c.run()
            var result = Result(name: c.name, ranks: c.ranks, simulated: simulated, closedForm: closed,
                                wall: (ContinuousClock.now - start).seconds, peakResidentMB: peakResidentMB())
            // Full fidelity sits next to the symmetric run of the same scenario, just before it.
            if c.name.hasSuffix(", every pipeline"), let previous = results.last { result.symmetric = previous.simulated }
            results.append(result)
            each(result)
        }
    }

    /// The process's peak resident set so far (Linux reports kilobytes).
    public static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
