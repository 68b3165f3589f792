import ArgumentParser
import Collectives
import Foundation
import Tensor
import Training
import Workflows

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Measure training throughput: tokens/s, achieved GFLOP/s, this machine's sgemm rate and MFU.",
        discussion: """
          fleet bench train gpt-tiny --threads 1 --batch 8 --vs-pytorch    # fleet and PyTorch CPU, alternating, side by side
          fleet bench train gpt-tiny --threads 2 --batch 32 --vs-pytorch
          fleet bench train gpt-tiny --dp 2        # one process vs dp2, same batch per replica, side by side
          fleet bench train gpt-tiny --pp 2 --microbatches 4   # step breakdown and measured vs predicted bubble
          fleet bench train gpt-tiny --dp 4 --zero 3   # state per rank and speed beside the same layout unsharded
        """)

    @OptionGroup var options: TrainOptions
    @OptionGroup var layoutOptions: LayoutOptions
    @OptionGroup var workers: WorkerOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: "Also train the same model with PyTorch on the CPU (same threads, batch and steps), alternating runs, and print the ratio.")
    var vsPytorch = false

    @Option(help: "Python with PyTorch (and numpy, threadpoolctl) for --vs-pytorch.")
    var python = "python3"

    @Option(help: "Alternating rounds of fleet and PyTorch with --vs-pytorch; medians are reported.")
    var rounds = 3

    func run() throws {
        try Console.reportingErrors {
            var options = self.options
            if options.steps == 300 { options.steps = 30 }
            let layout = layoutOptions.layout
            if layout.worldSize > 1 || Settings.current.isWorker {
                // --batch is per data-parallel replica here, so every layout does the same work per replica.
                try ParallelBenchmark(options: options, layout: layout, workers: workers, json: json).run()
                return
            }
            var benchmark = ThroughputBenchmark(configuration: try options.configuration(), corpus: try options.corpus())
            benchmark.python = vsPytorch ? python : nil
            benchmark.rounds = rounds
            let result = try benchmark.run()
            if json { Console.json(result.record) } else { result.lines.forEach(Console.out) }
        }
    }
}
