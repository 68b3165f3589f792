import ArgumentParser
import Collectives
import Foundation
import Parallelism
import Training
import Workflows

/// `fleet bench train` with a parallel layout: the one-process baseline and the layout,
/// measured one after the other in the same command with the same per-replica batch.
struct ParallelBenchmark {
    let options: TrainOptions
    let layout: ParallelLayout
    let workers: WorkerOptions
    let json: Bool

    /// In the launcher: baseline, then the workers; in a worker: its share of the layout run.
    func run() throws {
        var configuration = try options.configuration()
        let perReplica = configuration.batch
        configuration.batch = perReplica * layout.dp
        try layout.validate(model: configuration.model, batch: configuration.batch,
                            worldSize: Settings.current.isWorker ? nil : layout.worldSize)
        if Settings.current.isWorker {
            return try runWorker(configuration)
        }
        var baseline = configuration
        baseline.batch = perReplica
        let single = try Trainer(configuration: baseline, corpus: try options.corpus()).run()
        var launcher = workers
        launcher.ranks = layout.worldSize
        let runDir = try workers.runDir ?? RunDirectory.create("bench")
        launcher.runDir = runDir
        _ = try launcher.workerTransport()
        let result = try Self.readSummary("\(runDir)/summary.json")
        let ranks = try (0..<layout.worldSize).map { try RankAverage(rank: $0, path: "\(runDir)/rank-\($0).steps.jsonl") }
        report(single: single.tokensPerSecond, parallel: result, ranks: ranks, runDir: runDir)
    }

    private func runWorker(_ configuration: TrainingConfiguration) throws {
        guard let transport = try workers.workerTransport() else { return }
        defer { shutDown(transport) }
        try Console.reportingErrors(rank: transport.rank) {
            let trainer = try DistributedTrainer(configuration: configuration, layout: layout, transport: transport, corpus: try options.corpus())
            let runDir = Settings.current.runDirectory ?? workers.runDir ?? "."
            let log = try RankStepLog(path: "\(runDir)/rank-\(transport.rank).steps.jsonl")
            let summary = try trainer.run(everyRank: { m, r in log.write(m, r, rank: transport.rank) })
            if let summary {
                let line = Console.jsonLine([("tokens_per_s", summary.tokensPerSecond), ("mfu", summary.mfu)])
                try line.write(toFile: "\(runDir)/summary.json", atomically: true, encoding: .utf8)
            }
        }
    }

    static func readSummary(_ path: String) throws -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Double] else {
            throw ValidationError("the workers left no summary at \(path)")
        }
        return object
    }

    private func report(single: Double, parallel: [String: Double], ranks: [RankAverage], runDir: String) {
        let tokens = parallel["tokens_per_s"] ?? 0
        let predicted = (try? layout.pipeline.check().bubbleFraction) ?? 0
        let measuredBubble = ranks.map { $0.step > 0 ? $0.pipelineWait / $0.step : 0 }.reduce(0, +) / Double(max(1, ranks.count))
        if json {
            Console.json([("layout", layout.description), ("ranks", layout.worldSize), ("one_process_tokens_per_s", single),
                          ("tokens_per_s", tokens), ("speedup", single > 0 ? tokens / single : 0),
                          ("predicted_bubble", predicted), ("measured_pipeline_wait_fraction", measuredBubble)])
            return
        }
        Console.out("fleet bench train \(options.model.name), \(layout) on \(layout.worldSize) ranks, \(options.batch) sequences per replica, 1 BLAS thread per rank")
        Console.out(String(format: "  one process   %9.0f tokens/s", single))
        let name = layout.description.padding(toLength: 13, withPad: " ", startingAt: 0)
        Console.out("  \(name)" + String(format: " %9.0f tokens/s   → %.2f× (measured one after the other in this run)", tokens,
                                                single > 0 ? tokens / single : 0))
        Console.out("")
        let table = Table(columns: [("rank", 4), ("coords", 14), ("step ms", 8), ("compute", 8), ("tp", 7), ("pipe wait", 9), ("dp exposed", 10)])
        Console.out(table.header())
        for r in ranks {
            Console.out(table.row(["\(r.rank)", "\(layout.mesh.coordinates(of: r.rank))", String(format: "%.1f", r.step),
                                   String(format: "%.1f", r.compute), String(format: "%.1f", r.tensor),
                                   String(format: "%.1f", r.pipelineWait), String(format: "%.1f", r.dataExposed)]))
        }
        if layout.pp > 1 {
            Console.out(String(format: "\npipeline: predicted bubble %.1f%% (schedule, forward = 1, backward = 2), measured waiting %.1f%% of the step",
                               predicted * 100, measuredBubble * 100))
        }
        Console.out("per-rank step logs: \(runDir)")
    }
}
