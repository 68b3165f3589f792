import Foundation
import Tensor
import Training

/// `fleet bench train` in one process: fleet's trainer and (optionally) PyTorch on the CPU
/// with the same threads, batch and steps, alternating rounds so that a slow minute on a
/// shared machine hits both; medians are reported.
public struct ThroughputBenchmark {
    public let configuration: TrainingConfiguration
    public let corpus: Corpus
    /// Python with PyTorch for the side-by-side run; nil runs fleet alone.
    public var python: String?
    public var rounds = 3

    public init(configuration: TrainingConfiguration, corpus: Corpus) {
        self.configuration = configuration
        self.corpus = corpus
    }

    /// The medians of every round.
    public struct Result {
        public let configuration: TrainingConfiguration
        public let rounds: Int
        public let fleet: TrainingSummary
        public let torchTokensPerSecond: Double?
        public let torchVersion: String?
        public let numpySGEMM: Double?
        public let numpyKernel: String?
        public let blas: BLASKernelReport

        /// fleet's tokens/s over PyTorch's.
        public var vsPyTorch: Double? { torchTokensPerSecond.map { fleet.tokensPerSecond / $0 } }
        /// fleet's sgemm GFLOP/s per thread over numpy's one-thread figure.
        public var sgemmVsNumpy: Double? {
            numpySGEMM.map { fleet.gemmFLOPs / Double(max(1, configuration.threads)) / 1e9 / $0 }
        }

        /// The lines `fleet bench train` prints.
        public var lines: [String] {
            let c = configuration, s = fleet
            var lines = ["fleet bench train \(c.model.name): batch \(c.batch) × \(c.sequence), \(c.threads) thread(s), \(c.steps) steps"
                         + (torchTokensPerSecond != nil ? ", \(rounds) alternating rounds (medians)" : ""), "  " + blas.headerLine]
            lines.append(String(format: "  tokens/s          %10.0f", s.tokensPerSecond))
            lines.append(String(format: "  achieved GFLOP/s  %10.1f", s.achievedFLOPs / 1e9))
            lines.append(String(format: "  sgemm GFLOP/s     %10.1f   (1024³, measured in this run)", s.gemmFLOPs / 1e9))
            lines.append(String(format: "  MFU               %9.1f%%   (of %.1f GFLOP/s: %@)", s.mfu * 100, s.peakFLOPs / 1e9, TrainingText.peakName(s.peakSource)))
            lines.append(String(format: "  of the sgemm rate %9.2f×", s.sgemmFraction))
            if let peak = s.cpuPeakFLOPs, let mfu = s.cpuPeakMFU {
                lines.append(String(format: "  of the CPU's peak %9.1f%%   (%.1f GFLOP/s: %@)", mfu * 100, peak / 1e9, CPUFeatures.current.summary))
            }
            if let torch = torchTokensPerSecond, let ratio = vsPyTorch {
                lines.append(String(format: "  PyTorch %@ %10.0f   → fleet / PyTorch = %.2f× (same run, alternating)", torchVersion ?? "?", torch, ratio))
            }
            if let numpy = numpySGEMM, let ratio = sgemmVsNumpy {
                lines.append(String(format: "  numpy sgemm       %10.1f   (1 thread, its own OpenBLAS, kernel %@) → fleet / numpy = %.2f×",
                                    numpy, numpyKernel ?? "?", ratio))
            }
            return lines
        }

        /// The object `--json` prints.
        public var record: [(String, Any)] {
            let c = configuration, s = fleet
            return [("model", c.model.name), ("threads", c.threads), ("batch", c.batch), ("seq", c.sequence), ("steps", c.steps),
                    ("rounds", rounds), ("tokens_per_s", s.tokensPerSecond), ("achieved_gflops", s.achievedFLOPs / 1e9),
                    ("sgemm_gflops", s.gemmFLOPs / 1e9), ("mfu", s.mfu), ("mfu_peak_gflops", s.peakFLOPs / 1e9),
                    ("mfu_peak", s.peakSource), ("sgemm_fraction", s.sgemmFraction),
                    ("cpu_peak_gflops", s.cpuPeakFLOPs.map { $0 / 1e9 } ?? Double.nan), ("mfu_cpu_peak", s.cpuPeakMFU ?? Double.nan),
                    ("blas_kernel", blas.kernel), ("blas_kernel_source", blas.source.rawValue),
                    ("pytorch_tokens_per_s", torchTokensPerSecond ?? Double.nan), ("vs_pytorch", vsPyTorch ?? Double.nan),
                    ("pytorch_version", torchVersion ?? ""), ("numpy_sgemm_gflops", numpySGEMM ?? Double.nan),
                    ("sgemm_vs_numpy", sgemmVsNumpy ?? Double.nan), ("numpy_blas_kernel", numpyKernel ?? "")]
        }
    }

    public func run() throws -> Result {
        var fleetRuns: [TrainingSummary] = [], torchRuns: [PyTorchReference.Result] = []
        let c = configuration
        for _ in 0..<(python != nil ? max(1, rounds) : 1) {
            fleetRuns.append(try Trainer(configuration: c, corpus: corpus).run())
            if let python {
                torchRuns.append(try PyTorchReference.run(python: python, model: c.model, batch: c.batch, sequence: c.sequence,
                                                          steps: c.steps, threads: c.threads))
            }
        }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.sorted()[values.count / 2] }
        return Result(configuration: c, rounds: fleetRuns.count,
                      fleet: fleetRuns.sorted { $0.tokensPerSecond < $1.tokensPerSecond }[fleetRuns.count / 2],
                      torchTokensPerSecond: median(torchRuns.map(\.tokens_per_s)), torchVersion: torchRuns.first?.torch,
                      numpySGEMM: median(torchRuns.compactMap(\.numpy_sgemm_gflops)),
                      numpyKernel: torchRuns.compactMap(\.numpy_blas_kernel).first,
                      blas: BLASKernelReport.current(environment: ProcessInfo.processInfo.environment))
    }
}
