import ArgumentParser
import FaultInjection
import Foundation
import Workflows

struct Chaos: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A fault campaign: a fault-free reference, then runs with random faults that must all recover bit for bit.",
        discussion: """
        Each run trains in deterministic mode with checkpoints, message checksums, replica comparison and restarts, and
        one random fault (crash, hang, NaN, bit flip, drop, corrupt, failed or torn checkpoint write, straggler, delay).
        A run passes when its final parameters are bitwise the reference's and every complete checkpoint verifies.
        What happened in each run is read from its event channel (run-N/events.jsonl).
          fleet chaos gpt-tiny --dp 2 --pp 2 --runs 20 --seed 7
        """)

    @Argument(help: "Model to train.")
    var model: String = "gpt-tiny"

    @OptionGroup var layoutOptions: LayoutOptions

    @Option(help: "Faulty runs.")
    var runs: Int = 10

    @Option(help: "Seed of the fault draws.")
    var seed: UInt64 = 7

    @Option(help: "Steps per run.")
    var steps: Int = 20

    @Option(help: "Fault kinds to draw from, comma-separated.")
    var kinds: String = "crash,hang,nan,bitflip,drop,corrupt,duplicate,checkpoint,slow,delay"

    @Option(help: "Directory for the runs (kept for inspection).")
    var dir: String?

    func validate() throws {
        guard runs > 0 else { throw ValidationError("--runs must be positive") }
        guard steps >= 8 else { throw ValidationError("--steps must be at least 8") }
        for name in kinds.split(separator: ",") where Fault.Kind(rawValue: String(name)) == nil {
            throw ValidationError("unknown fault kind '\(name)' in --kinds")
        }
    }

    func run() throws {
        try Console.reportingErrors {
            let layout = layoutOptions.layout
            let campaign = try ChaosCampaign(model: model, layout: layout, steps: steps, seed: seed,
                                             kinds: kinds.split(separator: ",").compactMap { Fault.Kind(rawValue: String($0)) },
                                             directory: try dir ?? RunDirectory.create("chaos"))
            Console.out("fleet chaos \(model) \(layout) (\(layout.worldSize) ranks), \(runs) runs, seed \(seed); runs in \(campaign.directory)")
            let reference = try campaign.reference()
            let table = Table(columns: [("run", 4), ("fault", 46), ("detected", 30), ("detect s", 8), ("recovered", 9), ("lost", 5), ("ckpts", 6)])
            Console.out(table.header())
            var misses = 0
            for (index, fault) in campaign.faults(runs).enumerated() {
                let o = try campaign.run(index + 1, fault: fault, reference: reference)
                if !o.passed { misses += 1 }
                Console.out(table.row(["\(o.run)", o.fault, o.missedDetection ? "MISSED: " + o.detected : o.detected,
                                       o.detectionSeconds.map { String(format: "%.2f", $0) } ?? "—",
                                       o.recovered ? "yes" : "NO", "\(o.recomputedSteps)", o.checkpointsIntact ? "ok" : "BAD"]))
                if !o.recovered { Console.err("run \(o.run) (\(o.fault)) did not recover: \(o.stderr)") }
            }
            Console.out(misses == 0 ? "every run recovered bitwise and no checkpoint was damaged" : "\(misses) run(s) missed")
            if misses > 0 { throw ExitCode(1) }
        }
    }
}
