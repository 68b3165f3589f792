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
            guard let transport = try workers.workerTransport() else { return }
            defer { shutDown(transport) }
            let bench = LayoutThroughput(layout: layout, runDirectory: Settings.current.runDirectory ?? workers.runDir ?? ".")
            return try Console.reportingErrors(rank: transport.rank) { try bench.runRank(configuration, corpus: try options.corpus(), transport: transport) }
        }
        var baseline = configuration
        baseline.batch = perReplica
        let single = try Trainer(configuration: baseline, corpus: try options.corpus()).run()
        var launcher = workers
        launcher.ranks = layout.worldSize
        launcher.runDir = try workers.runDir ?? RunDirectory.create("bench")
        _ = try launcher.workerTransport()
        let result = try LayoutThroughput(layout: layout, runDirectory: launcher.runDir!).result(single: single.tokensPerSecond)
        if json {
            Console.json(result.record)
        } else {
            result.lines(model: options.model.name, batchPerReplica: options.batch, runDirectory: launcher.runDir!).forEach(Console.out)
        }
    }
}
