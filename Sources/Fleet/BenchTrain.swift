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
            let configuration = try options.configuration()
            let blas = BLASKernelReport.current(environment: ProcessInfo.processInfo.environment)
            // Rounds alternate fleet and PyTorch so a slow minute on a shared machine hits both.
            var fleetRuns: [TrainingSummary] = [], torchRuns: [PyTorchReference.Result] = []
            for _ in 0..<(vsPytorch ? max(1, rounds) : 1) {
                let trainer = try Trainer(configuration: configuration, corpus: try options.corpus())
                fleetRuns.append(trainer.run())
                if vsPytorch {
                    torchRuns.append(try PyTorchReference.run(python: python, model: configuration.model, batch: configuration.batch,
                                                              sequence: configuration.sequence, steps: configuration.steps, threads: configuration.threads))
                }
            }
            let summary = fleetRuns.sorted { $0.tokensPerSecond < $1.tokensPerSecond }[fleetRuns.count / 2]
            let torch = median(torchRuns.map(\.tokens_per_s)), numpy = median(torchRuns.compactMap(\.numpy_sgemm_gflops))
            let ratio = torch.map { summary.tokensPerSecond / $0 }
            let oneThreadSGEMM = summary.gemmFLOPs / Double(max(1, configuration.threads))
            if json {
                Console.json([("model", configuration.model.name), ("threads", configuration.threads), ("batch", configuration.batch),
                              ("seq", configuration.sequence), ("steps", configuration.steps), ("rounds", fleetRuns.count),
                              ("tokens_per_s", summary.tokensPerSecond), ("achieved_gflops", summary.achievedFLOPs / 1e9),
                              ("sgemm_gflops", summary.gemmFLOPs / 1e9), ("mfu", summary.mfu),
                              ("cpu_peak_gflops", summary.cpuPeakFLOPs.map { $0 / 1e9 } ?? Double.nan), ("mfu_cpu_peak", summary.cpuPeakMFU ?? Double.nan),
                              ("blas_kernel", blas.kernel), ("blas_kernel_source", blas.source.rawValue),
                              ("pytorch_tokens_per_s", torch ?? Double.nan), ("vs_pytorch", ratio ?? Double.nan),
                              ("pytorch_version", torchRuns.first?.torch ?? ""),
                              ("numpy_sgemm_gflops", numpy ?? Double.nan), ("sgemm_vs_numpy", numpy.map { oneThreadSGEMM / 1e9 / $0 } ?? Double.nan),
                              ("numpy_blas_kernel", torchRuns.compactMap(\.numpy_blas_kernel).first ?? "")])
                return
            }
            Console.out("fleet bench train \(configuration.model.name): batch \(configuration.batch) × \(configuration.sequence), \(configuration.threads) thread(s), \(configuration.steps) steps"
                        + (vsPytorch ? ", \(fleetRuns.count) alternating rounds (medians)" : ""))
            Console.out("  " + blas.headerLine)
            Console.out(String(format: "  tokens/s          %10.0f", summary.tokensPerSecond))
            Console.out(String(format: "  achieved GFLOP/s  %10.1f", summary.achievedFLOPs / 1e9))
            Console.out(String(format: "  sgemm GFLOP/s     %10.1f   (1024³, measured in this run)", summary.gemmFLOPs / 1e9))
            Console.out(String(format: "  MFU               %9.1f%%   (of that sgemm rate)", summary.mfu * 100))
            if let peak = summary.cpuPeakFLOPs, let mfu = summary.cpuPeakMFU {
                Console.out(String(format: "  MFU, CPU peak     %9.1f%%   (of %.1f GFLOP/s: %@)", mfu * 100, peak / 1e9, CPUFeatures.current.summary))
            }
            if let torch, let ratio {
                Console.out(String(format: "  PyTorch %@ %10.0f   → fleet / PyTorch = %.2f× (same run, alternating)", torchRuns[0].torch, torch, ratio))
            }
            if let numpy {
                Console.out(String(format: "  numpy sgemm       %10.1f   (1 thread, its own OpenBLAS, kernel %@) → fleet / numpy = %.2f×",
                                   numpy, torchRuns.compactMap(\.numpy_blas_kernel).first ?? "?", oneThreadSGEMM / 1e9 / numpy))
            }
        }
    }

    private func median(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.sorted()[values.count / 2]
    }
}
