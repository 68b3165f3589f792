import Foundation
import Parallelism
import Training

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
