import Foundation
import Parallelism
import Tensor
import Training

/// What `fleet train --json` prints per step and at the end, as ordered JSON fields: one
/// definition of the keys for every command (and exercise) that records a training run.
public enum TrainingRecord {
    /// One step: loss, rate, throughput and, for a multi-rank run, the step's breakdown and traffic.
    public static func step(_ m: StepMetrics, _ b: DistributedTrainer.StepResult?) -> [(String, Any)] {
        var fields: [(String, Any)] = [("step", m.step + 1), ("loss", Double(m.loss)), ("lr", Double(m.learningRate)),
                                       ("grad_norm", Double(m.gradientNorm)), ("tokens_per_s", m.tokensPerSecond),
                                       (StepKey.step, m.seconds), ("mfu", m.mfu ?? Double.nan)]
        if let b {
            // Byte keys as the simulator's stages name them (tp_bytes, dp_bytes, pp_bytes).
            fields += StepKey.breakdown(b)
                + [("tp_allreduces", b.traffic.tensorAllReduces), ("tp_bytes", b.traffic.tensorFloats * 4),
                   ("dp_allreduces", b.traffic.dataAllReduces), ("dp_bytes", b.traffic.dataFloats * 4),
                   ("pp_messages", b.traffic.pipelineMessages), ("pp_bytes", b.traffic.pipelineFloats * 4),
                   ("cp_exchanges", b.traffic.contextExchanges), ("cp_bytes", b.traffic.contextFloats * 4)]
        }
        if let e = b?.experts {
            // Per MoE block: the assignments each expert took (tokens × top-k), and the busiest over the mean;
            // Switch's balance per block (1: even), and the weighted sum of them the objective adds.
            fields += [("expert_tokens", e.tokensPerExpert), ("expert_imbalance", e.imbalance.max() ?? 1),
                       ("dropped_tokens", e.dropped.reduce(0, +)), ("expert_balance", e.balance.map(Double.init)),
                       ("balance_loss", Double(e.balanceLoss)),
                       // Expert parallelism's all-to-alls on this rank (none without --ep).
                       ("alltoalls", b!.traffic.expertExchanges), ("alltoall_bytes", b!.traffic.expertFloats * 4)]
        }
        if let v = m.validationLoss { fields.append(("val_loss", Double(v))) }
        return fields
    }

    /// The run's summary: losses, throughput, rates against the sgemm and the CPU's peak, the BLAS kernel(s), stragglers.
    public static func summary(_ s: TrainingSummary, blas: BLASKernelReport) -> [(String, Any)] {
        [("final_loss", Double(s.finalLoss)), ("val_loss", Double(s.validationLoss)), ("tokens_per_s", s.tokensPerSecond),
         ("achieved_gflops", s.achievedFLOPs / 1e9), ("sgemm_gflops", s.gemmFLOPs / 1e9), ("mfu", s.mfu),
         ("mfu_peak_gflops", s.peakFLOPs / 1e9), ("mfu_peak", s.peakSource), ("sgemm_fraction", s.sgemmFraction),
         ("cpu_peak_gflops", s.cpuPeakFLOPs.map { $0 / 1e9 } ?? Double.nan), ("mfu_cpu_peak", s.cpuPeakMFU ?? Double.nan),
         ("blas_kernel", blas.kernel), ("blas_kernel_source", blas.source.rawValue), ("blas_kernels", s.blasKernels),
         ("blas_kernel_detected", blas.detected ?? ""), ("blas_kernel_note", blas.note ?? ""),
         ("straggler_ranks", s.stragglers.map(\.rank)), ("hosts", s.hosts),
         ("state_bytes_per_rank", s.stateBytesPerRank), ("resident_state_bytes_per_rank", s.residentStateBytesPerRank),
         ("peak_resident_state_bytes_per_rank", s.peakResidentStateBytesPerRank), ("activation_bytes_per_rank", s.activationBytesPerRank),
         ("transport_paths", JSONObject(s.transportPaths.sorted { $0.key < $1.key }.map { ($0.key, $0.value) as (String, Any) }))]
    }
}
