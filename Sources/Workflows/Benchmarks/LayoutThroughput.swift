import Collectives
import Foundation
import Parallelism
import Training

/// `fleet bench train` with a parallel layout: the one-process baseline and the layout's
/// worker processes, with the same per-replica batch, measured one after the other.
public struct LayoutThroughput {
    public let layout: ParallelLayout
    /// Where the workers leave their step logs and the reporter its summary.
    public let runDirectory: String

    public init(layout: ParallelLayout, runDirectory: String) {
        self.layout = layout
        self.runDirectory = runDirectory
    }

    /// One rank of the layout run: trains, logs every step, and (the reporter) writes the summary.
    public func runRank(_ configuration: TrainingConfiguration, corpus: Corpus, transport: Transport) throws {
        let trainer = try DistributedTrainer(configuration: configuration, layout: layout, transport: transport, corpus: corpus)
        let log = try RankStepLog(path: "\(runDirectory)/rank-\(transport.rank).steps.jsonl")
        if let summary = try trainer.run(everyRank: { m, r in try log.write(m, r, rank: transport.rank) }) {
            try JSONLine.encode([("tokens_per_s", summary.tokensPerSecond), ("mfu", summary.mfu),
                                 ("state_bytes_per_rank", Double(summary.stateBytesPerRank)),
                                 ("resident_state_bytes_per_rank", Double(summary.residentStateBytesPerRank)),
                                 ("activation_bytes_per_rank", Double(summary.activationBytesPerRank))])
                .write(toFile: "\(runDirectory)/summary.json", atomically: true, encoding: .utf8)
        }
    }

    /// The baseline against the layout, read back from what the workers left.
    public struct Result {
        public let layout: ParallelLayout
        public let single: Double
        public let parallel: Double
        public let ranks: [RankAverage]
        /// The most any rank held of parameters, gradients and optimizer state: counted, and resident pages.
        public var stateBytes = 0.0, residentStateBytes = 0.0
        /// The most any rank allocated for its micro-batches' activations.
        public var activationBytes = 0.0
        /// Mean tensor-parallel communication per step over the ranks.
        public var tensorSeconds: Double { ranks.map(\.tensor).reduce(0, +) / Double(max(1, ranks.count)) }

        public var speedup: Double { single > 0 ? parallel / single : 0 }
        /// The schedule's idle fraction (forward = 1, backward = 2).
        public var predictedBubble: Double { (try? layout.pipeline.check().bubbleFraction) ?? 0 }
        /// The ranks' mean share of the step spent waiting on pipeline messages.
        public var measuredBubble: Double {
            ranks.map { $0.step > 0 ? $0.pipelineWait / $0.step : 0 }.reduce(0, +) / Double(max(1, ranks.count))
        }

        /// The ranks' mean share of the step not spent in forward and backward passes or their
        /// tensor-parallel sums: the pipeline's waits and its drain (which the last stage spends
        /// in the tied embedding's sum), plus the update and exposed data-parallel traffic.
        public var measuredIdle: Double {
            ranks.map { $0.step > 0 ? max(0, $0.step - $0.compute - $0.tensor) / $0.step : 0 }.reduce(0, +) / Double(max(1, ranks.count))
        }

        /// The lines `fleet bench train --dp/--tp/--pp` prints.
        public func lines(model: String, batchPerReplica: Int, runDirectory: String) -> [String] {
            var lines = ["fleet bench train \(model), \(layout) on \(layout.worldSize) ranks, \(batchPerReplica) sequences per replica, 1 BLAS thread per rank",
                         String(format: "  one process   %9.0f tokens/s", single)]
            let name = layout.description.padding(toLength: 13, withPad: " ", startingAt: 0)
            lines.append("  \(name)" + String(format: " %9.0f tokens/s   → %.2f× (measured one after the other in this run)", parallel, speedup))
            lines.append("")
            let table = Table(columns: [("rank", 4), ("coords", 14), ("step ms", 8), ("compute", 8), ("tp", 7), ("pipe wait", 9), ("dp exposed", 10)])
            lines.append(table.header())
            for rank in ranks {
                lines.append(table.row(["\(rank.rank)", "\(layout.mesh.coordinates(of: rank.rank))"]
                    + [rank.step, rank.compute, rank.tensor, rank.pipelineWait, rank.dataExposed].map { String(format: "%.1f", $0 * 1000) }))
            }
            lines.append(String(format: "\nstate per rank (parameters, gradients, optimizer): %.2f MiB held, %.2f MiB resident",
                                stateBytes / 1_048_576, residentStateBytes / 1_048_576))
            if layout.pp > 1 {
                lines.append(String(format: "\npipeline: predicted bubble %.1f%% (schedule, forward = 1, backward = 2), measured waiting %.1f%% of the step",
                                    predictedBubble * 100, measuredBubble * 100))
            }
            lines.append("per-rank step logs: \(runDirectory)")
            return lines
        }

        /// What interleaving changed against `plain`, the same pipeline under 1F1B measured in this run.
        public func interleaving(against plain: Result) -> InterleavingGain { InterleavingGain(interleaved: self, plain: plain) }

        public var record: [(String, Any)] {
            [("layout", layout.description), ("ranks", layout.worldSize), ("one_process_tokens_per_s", single),
             ("tokens_per_s", parallel), ("speedup", speedup), ("predicted_bubble", predictedBubble),
             ("measured_pipeline_wait_fraction", measuredBubble), ("state_bytes_per_rank", stateBytes),
             ("resident_state_bytes_per_rank", residentStateBytes), ("activation_bytes_per_rank", activationBytes)]
        }

        /// What sequence parallelism changed against `plain`, the same layout without it measured in this run.
        public func sequenceParallelism(against plain: Result) -> [(String, Any)] {
            [("plain_tokens_per_s", plain.parallel), ("plain_activation_bytes_per_rank", plain.activationBytes),
             ("activation_ratio", plain.activationBytes > 0 ? activationBytes / plain.activationBytes : 0),
             ("plain_tensor_parallel_s", plain.tensorSeconds), ("tensor_parallel_s", tensorSeconds)]
        }

        public func sequenceParallelLines(against plain: Result) -> [String] {
            ["\nsequence parallelism, side by side with the same layout without it in this run:",
             String(format: "  activations per rank %7.2f MiB → %7.2f MiB  (%.2f×)", plain.activationBytes / 1_048_576, activationBytes / 1_048_576,
                    plain.activationBytes > 0 ? activationBytes / plain.activationBytes : 0),
             String(format: "  tensor-parallel      %7.1f ms  → %7.1f ms   a step (all-reduces → all-gather/reduce-scatter pairs)",
                    plain.tensorSeconds * 1000, tensorSeconds * 1000),
             String(format: "  tokens/s             %7.0f     → %7.0f      (%.2f×)", plain.parallel, parallel, plain.parallel > 0 ? parallel / plain.parallel : 0)]
        }

        /// What ZeRO changed against `unsharded`, the same layout without it measured in this run.
        public func sharding(against unsharded: Result) -> [(String, Any)] {
            [("unsharded_tokens_per_s", unsharded.parallel), ("unsharded_state_bytes_per_rank", unsharded.stateBytes),
             ("state_ratio", unsharded.stateBytes > 0 ? stateBytes / unsharded.stateBytes : 0),
             ("resident_state_ratio", unsharded.residentStateBytes > 0 ? residentStateBytes / unsharded.residentStateBytes : 0)]
        }

        public func shardingLines(against unsharded: Result) -> [String] {
            [String(format: "\nZeRO-%d, side by side with the same layout unsharded in this run:", layout.zeroStage),
             String(format: "  state per rank   %7.2f MiB → %7.2f MiB  (%.2f×; resident pages %.2f×)", unsharded.stateBytes / 1_048_576,
                    stateBytes / 1_048_576, unsharded.stateBytes > 0 ? stateBytes / unsharded.stateBytes : 0,
                    unsharded.residentStateBytes > 0 ? residentStateBytes / unsharded.residentStateBytes : 0),
             String(format: "  tokens/s         %7.0f     → %7.0f      (%.2f×)", unsharded.parallel, parallel,
                    unsharded.parallel > 0 ? parallel / unsharded.parallel : 0)]
        }
    }

    /// An interleaved run beside its 1F1B counterpart: how much of the predicted bubble
    /// reduction the measured pipeline waiting shows.
    public struct InterleavingGain {
        public let interleaved: Result
        public let plain: Result

        public var predictedReduction: Double { plain.predictedBubble - interleaved.predictedBubble }
        /// Fall of the waits for pipeline messages, and of all time not computing (waits and drain).
        public var measuredReduction: Double { plain.measuredBubble - interleaved.measuredBubble }
        public var idleReduction: Double { plain.measuredIdle - interleaved.measuredIdle }
        /// Measured idle reduction over the predicted one (1: all of it).
        public var realised: Double { predictedReduction > 0 ? idleReduction / predictedReduction : 0 }

        public var lines: [String] {
            [String(format: "\ninterleaving, side by side with 1f1b in this run (%@ %.0f tokens/s, %@ %.0f tokens/s → %.2f×):",
                    plain.layout.description, plain.parallel, interleaved.layout.description, interleaved.parallel,
                    plain.parallel > 0 ? interleaved.parallel / plain.parallel : 0),
             String(format: "  predicted bubble   %5.1f%% → %5.1f%%  (−%.1f points)", plain.predictedBubble * 100, interleaved.predictedBubble * 100, predictedReduction * 100),
             String(format: "  measured waiting   %5.1f%% → %5.1f%%  (−%.1f points: receives only)",
                    plain.measuredBubble * 100, interleaved.measuredBubble * 100, measuredReduction * 100),
             String(format: "  measured idle      %5.1f%% → %5.1f%%  (−%.1f points, %.0f%% of the predicted reduction; waits, drain and update)",
                    plain.measuredIdle * 100, interleaved.measuredIdle * 100, idleReduction * 100, realised * 100)]
        }

        public var record: [(String, Any)] {
            [("plain_tokens_per_s", plain.parallel), ("plain_predicted_bubble", plain.predictedBubble),
             ("plain_measured_pipeline_wait_fraction", plain.measuredBubble), ("predicted_bubble_reduction", predictedReduction),
             ("measured_wait_reduction", measuredReduction), ("plain_measured_idle_fraction", plain.measuredIdle),
             ("measured_idle_fraction", interleaved.measuredIdle), ("measured_idle_reduction", idleReduction), ("realised_fraction", realised)]
        }
    }

    /// Reads the layout run's summary and step logs.
    public func result(single: Double) throws -> Result {
        let path = "\(runDirectory)/summary.json"
        guard let data = FileManager.default.contents(atPath: path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
            throw FleetError("the workers left no summary at \(path)", duringRun: true)
        }
        let ranks = try (0..<layout.worldSize).map { try RankAverage(rank: $0, path: "\(runDirectory)/rank-\($0).steps.jsonl") }
        var result = Result(layout: layout, single: single, parallel: object["tokens_per_s"] ?? 0, ranks: ranks)
        result.stateBytes = object["state_bytes_per_rank"] ?? 0
        result.residentStateBytes = object["resident_state_bytes_per_rank"] ?? 0
        result.activationBytes = object["activation_bytes_per_rank"] ?? 0
        return result
    }
}
