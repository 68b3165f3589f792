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
            if b.traffic.contextExchanges > 0 { line += String(format: "  ring attention %.1f ms", b.contextSeconds * 1000) }
        }
        if let e = b?.experts {
            line += String(format: "  experts: busiest %.2f× the mean, %d dropped", e.imbalance.max() ?? 1, e.dropped.reduce(0, +))
            if let b, b.traffic.expertExchanges > 0 { line += String(format: ", all-to-all %.1f ms", b.expertSeconds * 1000) }
        }
        if let v = m.validationLoss { line += String(format: "  val %.4f", v) }
        return line
    }

    /// What MFU's denominator was, in words.
    public static func peakName(_ source: String) -> String {
        switch source {
        case "cpu": return "the CPU's peak at its nominal clock"
        case "sgemm": return "the sgemm rate measured in this run, above the CPU's nominal peak"
        default: return "this run's own rate, above both the CPU's nominal peak and the measured sgemm"
        }
    }

    /// The run's end: notes (stragglers, ranks on different BLAS kernels) and the summary lines.
    public static func summary(_ s: TrainingSummary, saved: String?) -> (notes: [String], lines: [String]) {
        var notes = s.stragglers.map { "straggler: \($0)" }
        if Set(s.blasKernels).count > 1 {
            notes.append("warning: ranks run different BLAS kernels (\(s.blasKernels.enumerated().map { "rank \($0.offset): \($0.element)" }.joined(separator: ", "))): "
                         + "their results differ in the last bits")
        }
        if s.hosts > 1 {
            notes.append("ranks ran on \(s.hosts) hosts; rank pairs by path: "
                         + s.transportPaths.sorted { $0.key < $1.key }.map { "\($0.value) over \($0.key)" }.joined(separator: ", "))
        }
        guard !s.losses.isEmpty else {
            return (notes, [String(format: "done: no step left to train (resumed at the last one); validation loss %.4f", s.validationLoss)]
                + (saved.map { ["weights saved to \($0)"] } ?? []))
        }
        return (notes, [String(format: "done: final loss %.4f, validation loss %.4f, %.0f tokens/s, %.1f GFLOP/s achieved, MFU %.1f%% of %.1f GFLOP/s (%@; sgemm measured %.1f GFLOP/s)",
                               s.finalLoss, s.validationLoss, s.tokensPerSecond, s.achievedFLOPs / 1e9, s.mfu * 100, s.peakFLOPs / 1e9,
                               TrainingText.peakName(s.peakSource), s.gemmFLOPs / 1e9)]
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
