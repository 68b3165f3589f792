import ArgumentParser
import Foundation
import Collectives
import Training

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Measure training throughput: tokens/s, achieved GFLOP/s, this machine's sgemm rate and MFU.",
        discussion: """
        Reference on this kind of 2-core machine (../shared/design/PLATFORM.md): PyTorch 2.15 on CPU trains gpt-tiny at
        12,853 tokens/s with 1 thread (batch 8) and 23,575 tokens/s with 2 threads (batch 32).
          fleet bench train gpt-tiny --threads 1 --batch 8
          fleet bench train gpt-tiny --threads 2 --batch 32
          fleet bench train gpt-tiny --dp 2        # one process vs dp2, same batch per replica, side by side
          fleet bench train gpt-tiny --pp 2 --microbatches 4   # step breakdown and measured vs predicted bubble
        """)

    @OptionGroup var options: TrainOptions
    @OptionGroup var layoutOptions: LayoutOptions
    @OptionGroup var workers: WorkerOptions

    @Flag(help: "Print one JSON object.")
    var json = false

    /// PyTorch 2.15 CPU figures for gpt-tiny at context 128, measured on this machine kind.
    static let pytorchReference: [Int: (batch: Int, tokensPerSecond: Double)] = [1: (8, 12_853), 2: (32, 23_575)]

    func run() throws {
        try Console.reportingErrors {
            var options = self.options
            if options.steps == 300 { options.steps = 30 }
            let layout = layoutOptions.layout
            if layout.worldSize > 1 || WorldSetup.isWorker || MPITransport.isUnderMPIRun {
                // --batch is per data-parallel replica here, so every layout does the same work per replica.
                try ParallelBenchmark(options: options, layout: layout, workers: workers, json: json).run()
                return
            }
            let configuration = try options.configuration()
            let trainer = try Trainer(configuration: configuration, corpus: try options.corpus())
            let summary = trainer.run()
            let reference = Self.pytorchReference[configuration.threads]
                .flatMap { $0.batch == configuration.batch && configuration.model.name == "gpt-tiny" && configuration.sequence == 128 ? $0.tokensPerSecond : nil }
            if json {
                Console.json(["model": configuration.model.name, "threads": configuration.threads, "batch": configuration.batch,
                              "seq": configuration.sequence, "steps": configuration.steps, "tokens_per_s": summary.tokensPerSecond,
                              "achieved_gflops": summary.achievedFLOPs / 1e9, "sgemm_gflops": summary.gemmFLOPs / 1e9, "mfu": summary.mfu,
                              "pytorch_tokens_per_s": reference ?? Double.nan,
                              "vs_pytorch": reference.map { summary.tokensPerSecond / $0 } ?? Double.nan])
                return
            }
            Console.out("fleet bench train \(configuration.model.name): batch \(configuration.batch) × \(configuration.sequence), \(configuration.threads) thread(s), \(configuration.steps) steps")
            Console.out(String(format: "  tokens/s          %10.0f", summary.tokensPerSecond))
            Console.out(String(format: "  achieved GFLOP/s  %10.1f", summary.achievedFLOPs / 1e9))
            Console.out(String(format: "  sgemm GFLOP/s     %10.1f   (1024³, measured in this run)", summary.gemmFLOPs / 1e9))
            Console.out(String(format: "  MFU               %9.1f%%", summary.mfu * 100))
            if let reference {
                Console.out(String(format: "  PyTorch CPU ref.  %10.0f   → fleet / PyTorch = %.2f×", reference, summary.tokensPerSecond / reference))
            }
        }
    }
}
