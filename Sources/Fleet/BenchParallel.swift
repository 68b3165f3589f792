import ArgumentParser
import Collectives
import Foundation
import Parallelism
import Training
import Workflows

/// `fleet bench train` with a parallel layout: the one-process baseline and the layout,
/// measured one after the other in the same command with the same per-replica batch; an
/// interleaved layout also runs its plain 1F1B counterpart, so the bubble each leaves is
/// measured side by side.
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
        var plain: LayoutThroughput.Result?
        if layout.schedule == .interleaved {
            // The same command once more, its workers told to run one chunk per stage (the last flag wins).
            var counterpart = layout
            counterpart.schedule = .oneFOneB
            counterpart.virtualStages = 1
            var again = launcher
            again.runDir = launcher.runDir! + "/1f1b"
            again.extraArguments = ["--schedule", "1f1b", "--virtual-stages", "1"]
            try FileManager.default.createDirectory(atPath: again.runDir!, withIntermediateDirectories: true)
            _ = try again.workerTransport()
            plain = try LayoutThroughput(layout: counterpart, runDirectory: again.runDir!).result(single: single.tokensPerSecond)
        }
        if json {
            Console.json(result.record + (plain.map { result.interleaving(against: $0).record } ?? []))
        } else {
            result.lines(model: options.model.name, batchPerReplica: options.batch, runDirectory: launcher.runDir!).forEach(Console.out)
            if let plain { result.interleaving(against: plain).lines.forEach(Console.out) }
        }
    }
}
