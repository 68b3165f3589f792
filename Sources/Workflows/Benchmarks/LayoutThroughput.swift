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
            try JSONLine.encode([("tokens_per_s", summary.tokensPerSecond), ("mfu", summary.mfu)])
                .write(toFile: "\(runDirectory)/summary.json", atomically: true, encoding: .utf8)
        }
    }

    /// The baseline against the layout, read back from what the workers left.
    public struct Result {
        public let layout: ParallelLayout
        public let single: Double
        public let parallel: Double
        public let ranks: [RankAverage]

        public var speedup: Double { single > 0 ? parallel / single : 0 }
        /// The schedule's idle fraction (forward = 1, backward = 2).
        public var predictedBubble: Double { (try? layout.pipeline.check().bubbleFraction) ?? 0 }
        /// The ranks' mean share of the step spent waiting on pipeline messages.
        public var measuredBubble: Double {
            ranks.map { $0.step > 0 ? $0.pipelineWait / $0.step : 0 }.reduce(0, +) / Double(max(1, ranks.count))
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
            if layout.pp > 1 {
                lines.append(String(format: "\npipeline: predicted bubble %.1f%% (schedule, forward = 1, backward = 2), measured waiting %.1f%% of the step",
                                    predictedBubble * 100, measuredBubble * 100))
            }
            lines.append("per-rank step logs: \(runDirectory)")
            return lines
        }

        public var record: [(String, Any)] {
            [("layout", layout.description), ("ranks", layout.worldSize), ("one_process_tokens_per_s", single),
             ("tokens_per_s", parallel), ("speedup", speedup), ("predicted_bubble", predictedBubble),
             ("measured_pipeline_wait_fraction", measuredBubble)]
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
        return Result(layout: layout, single: single, parallel: object["tokens_per_s"] ?? 0, ranks: ranks)
    }
}
