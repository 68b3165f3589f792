import ArgumentParser
import Foundation
import Workflows

struct BenchSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Time the simulator itself: large collectives and a full 405B-class training step, with wall time and memory.",
        discussion: """
        Targets (issue #9): a 1 GiB ring all-reduce over 4,096 ranks ≤ 0.5 s and ≤ 200 MB, over 100,000 ranks ≤ 5 s and ≤ 1 GB;
        one step of a 405B-class model on 16,384 GPUs (tp8·pp16·dp128) ≤ 10 s and ≤ 2 GB. Full fidelity (issue #29): the same
        step with every pipeline simulated (`fleet simulate --every-pipeline`) ≤ 5 s and ≤ 2 GB, and on 100,352 GPUs ≤ 60 s,
        each reproducing the symmetric step it runs beside. Flow-level fidelity throughout.
          fleet bench simulate
          fleet bench simulate --json
        """)

    @Flag(help: "One JSON object per case.")
    var json = false

    func run() throws {
        try Console.reportingErrors {
            if !json { Console.out("fleet bench simulate: flow-level fidelity (max–min fair sharing), this machine") }
            SimulatorBenchmark.run { result in if json { Console.json(result.record) } else { Console.out(result.line) } }
        }
    }
}
