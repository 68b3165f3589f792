import Foundation

import Parallelism
import Workload

/// What one GPU holds during training, in bytes, for the most loaded pipeline stage.
public struct MemoryEstimate: Sendable, Hashable, Codable {
    public var weights: Double
    public var gradients: Double
    public var optimizer: Double
    public var activations: Double
    public var total: Double { weights + gradients + optimizer + activations }
    /// The stage whose GPUs hold the most.
    public var stage: Int

    /// Whether it fits in `capacity`, and if not, a message that says what to change.
    public func problem(capacity: Double, device: String) -> String? {
        guard total > capacity else { return nil }
        let gib = { (bytes: Double) in String(format: "%.1f GiB", bytes / 1_073_741_824) }
        return "the layout needs \(gib(total)) per GPU on stage \(stage), more than \(device)'s \(gib(capacity)): weights \(gib(weights)), "
            + "gradients \(gib(gradients)), optimizer state \(gib(optimizer)), activations \(gib(activations)); "
            + "try more tensor or pipeline parallelism, ZeRO (zero: 1–3), sequence_parallel: true (with tp ≥ 2), expert parallelism (ep, for a mixture of experts), recompute: full, or fewer micro-batch sequences"
    }
}

/// Mixed-precision training memory: weights and gradients in the training precision, an
/// fp32 master copy and two fp32 Adam moments; ZeRO shards the optimizer state (1), the
/// gradients too (2) and the weights too (3) over data parallelism. Activations per layer
/// follow Korthikanti et al. 2022 (no sequence parallelism): s·b·h·(10 + 24/t + 5·a·s/(h·t))
/// bytes at 16-bit (without the 5·a·s/(h·t) attention-score term under FlashAttention,
/// which never stores the scores), or 2·s·b·h with full recomputation, times the
/// micro-batches a stage holds at once under its schedule (chunk passes, each 1/V of the
/// stage's layers, under the interleaved schedule).
public enum MemoryModel {
    public enum Recompute: String, Sendable, Hashable, Codable { case none, full }

    /// The stage whose GPUs hold the most.
    public static func estimate(model: ModelSpec, layout: ParallelLayout, zero: Int, microbatchSequences: Int, sequence: Int,
                                precision: Device.Precision, recompute: Recompute, flashAttention: Bool = true, inFlight: [Int]) -> MemoryEstimate {
        stages(model: model, layout: layout, zero: zero, microbatchSequences: microbatchSequences, sequence: sequence, precision: precision,
               recompute: recompute, flashAttention: flashAttention, inFlight: inFlight)
            .reduce(MemoryEstimate(weights: 0, gradients: 0, optimizer: 0, activations: 0, stage: 0)) { $1.total > $0.total ? $1 : $0 }
    }

    /// What one GPU of each pipeline stage holds, `inFlight[s]` passes of stage s's schedule at once.
    public static func stages(model: ModelSpec, layout: ParallelLayout, zero: Int, microbatchSequences: Int, sequence: Int,
                              precision: Device.Precision, recompute: Recompute, flashAttention: Bool = true, inFlight: [Int]) -> [MemoryEstimate] {
        let bytes = Double(precision.bytes), dp = Double(layout.dp), tp = Double(layout.tp)
        let plan = ShardPlan(model: model, layout: layout, zero: zero)
        return layout.stageLayers(model: model).enumerated().map { s, chunks in
            // A pass in flight holds one chunk's layers (the whole stage unless interleaved).
            let layersPerPass = Double(chunks.reduce(0) { $0 + $1.count }) / Double(max(1, chunks.count))
            let local = Double(plan.heldElements(stage: s)), experts = Double(plan.heldExpertElements(stage: s))
            // ZeRO shards over the ranks holding the same parameters: dp for the dense ones, dp/ep for routed experts.
            let sharded = (local - experts) / dp + experts / max(1, dp / Double(layout.ep))
            let optimizerBytes = (precision == .fp32 ? 8.0 : 12.0)
            // Context parallelism: this rank's 1/cp of each sequence's positions, whose scores rows still span the whole sequence.
            let (sq, b, h, a) = (Double(sequence / max(1, layout.cp)), Double(microbatchSequences), Double(model.dModel), Double(model.heads))
            // Korthikanti et al. 2022: sbh(10 + 24/t + 5as/(ht)) bytes a layer at 2 bytes an element; sequence
            // parallelism splits the 10 too, sbh(34 + 5as/h)/t. Full recomputation keeps each layer's input.
            let attention = flashAttention ? 0 : 5 * a * Double(sequence) / h
            let sp = layout.sequenceParallel && layout.tp > 1
            let perLayer = recompute == .full ? 2 * sq * b * h / (sp ? tp : 1)
                : sq * b * h * (sp ? (34 + attention) / tp : 10 + (24 + attention) / tp) * bytes / 2
            let held = Double(inFlight.indices.contains(s) ? inFlight[s] : 1)
            return MemoryEstimate(weights: bytes * (zero >= 3 ? sharded : local),
                                  gradients: bytes * (zero >= 2 ? sharded : local),
                                  optimizer: optimizerBytes * (zero >= 1 ? sharded : local),
                                  activations: perLayer * layersPerPass * held, stage: s)
        }
    }
}
