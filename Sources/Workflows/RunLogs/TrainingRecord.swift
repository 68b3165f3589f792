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
                                       ("step_ms", m.seconds * 1000), ("mfu", m.mfu ?? Double.nan)]
        if let b {
            fields += [("compute_ms", b.computeSeconds * 1000), ("communication_ms", b.communicationSeconds * 1000),
                       ("tp_ms", b.tensorSeconds * 1000), ("pipeline_wait_ms", b.pipelineWaitSeconds * 1000),
                       ("dp_exposed_ms", b.exposedDataSeconds * 1000),
                       ("tp_allreduces", b.traffic.tensorAllReduces), ("tp_allreduce_bytes", b.traffic.tensorFloats * 4),
                       ("dp_allreduces", b.traffic.dataAllReduces), ("dp_allreduce_bytes", b.traffic.dataFloats * 4),
                       ("pp_messages", b.traffic.pipelineMessages), ("pp_bytes", b.traffic.pipelineFloats * 4)]
        }
        if let v = m.validationLoss { fields.append(("val_loss", Double(v))) }
        return fields
    }

    /// The run's summary: losses, throughput, rates against the sgemm and the CPU's peak, the BLAS kernel(s), stragglers.
    public static func summary(_ s: TrainingSummary, blas: BLASKernelReport) -> [(String, Any)] {
        [("final_loss", Double(s.finalLoss)), ("val_loss", Double(s.validationLoss)), ("tokens_per_s", s.tokensPerSecond),
         ("achieved_gflops", s.achievedFLOPs / 1e9), ("sgemm_gflops", s.gemmFLOPs / 1e9), ("mfu", s.mfu),
         ("cpu_peak_gflops", s.cpuPeakFLOPs.map { $0 / 1e9 } ?? Double.nan), ("mfu_cpu_peak", s.cpuPeakMFU ?? Double.nan),
         ("blas_kernel", blas.kernel), ("blas_kernel_source", blas.source.rawValue), ("blas_kernels", s.blasKernels),
         ("blas_kernel_detected", blas.detected ?? ""), ("blas_kernel_note", blas.note ?? ""),
         ("straggler_ranks", s.stragglers.map { "\($0.rank)" }.joined(separator: ","))]
    }
}

/// A training run as the lines `fleet train` prints.
public enum TrainingText {
    /// One progress line: loss, rate, time, throughput, MFU, the breakdown of a multi-rank step, validation.
    public static func step(_ m: StepMetrics, _ b: DistributedTrainer.StepResult?, of steps: Int) -> String {
        var line = String(format: "step %5d/%d  loss %.4f  lr %.2e  %7.1f ms/step  %8.0f tok/s  MFU %4.1f%%",
                          m.step + 1, steps, m.loss, m.learningRate, m.seconds * 1000, m.tokensPerSecond, (m.mfu ?? 0) * 100)
        if let b {
            line += String(format: "  [compute %.1f, tp %.1f, pipeline wait %.1f, dp exposed %.1f ms]", b.computeSeconds * 1000,
                           b.tensorSeconds * 1000, b.pipelineWaitSeconds * 1000, b.exposedDataSeconds * 1000)
        }
        if let v = m.validationLoss { line += String(format: "  val %.4f", v) }
        return line
    }

    /// The run's end: notes (stragglers, ranks on different BLAS kernels) and the summary lines.
    public static func summary(_ s: TrainingSummary, saved: String?) -> (notes: [String], lines: [String]) {
        var notes = s.stragglers.map { "straggler: \($0)" }
        if Set(s.blasKernels).count > 1 {
            notes.append("warning: ranks run different BLAS kernels (\(s.blasKernels.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", "))): "
                         + "their results differ in the last bits")
        }
        guard !s.losses.isEmpty else {
            return (notes, [String(format: "done: no step left to train (resumed at the last one); validation loss %.4f", s.validationLoss)]
                + (saved.map { ["weights saved to \($0)"] } ?? []))
        }
        let cpuPeak = s.cpuPeakFLOPs.map { String(format: " (%.1f%% of the CPU's peak %.1f GFLOP/s)", (s.cpuPeakMFU ?? 0) * 100, $0 / 1e9) } ?? ""
        return (notes, [String(format: "done: final loss %.4f, validation loss %.4f, %.0f tokens/s, %.1f GFLOP/s achieved, sgemm %.1f GFLOP/s, MFU %.1f%%",
                               s.finalLoss, s.validationLoss, s.tokensPerSecond, s.achievedFLOPs / 1e9, s.gemmFLOPs / 1e9, s.mfu * 100) + cpuPeak]
                + (saved.map { ["weights saved to \($0) (try: fleet generate --weights \($0))"] } ?? []))
    }

    /// What is trained, how, on what data, in which layout (and a warm-up that spans the run).
    public static func header(_ c: TrainingConfiguration, layout: ParallelLayout?, train: Int, validation: Int) -> String {
        var text = "fleet train \(c.model.name): \(c.model.parameterCount.formatted()) parameters, batch \(c.batch) × \(c.sequence) tokens, "
            + "\(c.steps) steps, \(c.threads) thread(s), data: \(train.formatted()) train / \(validation.formatted()) validation bytes"
        if c.warmupSteps >= c.steps {
            text += "; the warm-up spans the whole run (\(c.steps) of its default 20 steps: the learning rate peaks at the last step; pass --warmup to choose)"
        }
        if let layout, layout.worldSize > 1 {
            text += "; layout \(layout) on \(layout.worldSize) ranks, \(layout.microbatches) micro-batch(es), schedule \(layout.schedule.rawValue)"
        }
        return text
    }
}
