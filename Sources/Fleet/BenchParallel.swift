import ArgumentParser
import Collectives
import Foundation
import Parallelism
import Training
import Workflows

/// `fleet bench train` with a parallel layout: the one-process baseline and the layout,
/// measured one after the other in the same command with the same per-replica batch; an
/// interleaved layout also runs its plain 1F1B counterpart, so the bubble each leaves is
/// measured side by side, and a ZeRO layout its unsharded counterpart (memory and speed).
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
        try layout.validate(model: configuration.model, batch: configuration.batch, sequence: configuration.sequence,
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
        // An interleaved layout also runs as 1F1B, a ZeRO layout unsharded: the difference, measured side by side.
        func counterpart(_ other: ParallelLayout, _ arguments: [String], _ name: String) throws -> LayoutThroughput.Result {
            var again = launcher
            again.runDir = launcher.runDir! + "/" + name
            again.extraArguments = arguments   // the last flag wins
            try FileManager.default.createDirectory(atPath: again.runDir!, withIntermediateDirectories: true)
            _ = try again.workerTransport()
            return try LayoutThroughput(layout: other, runDirectory: again.runDir!).result(single: single.tokensPerSecond)
        }
        var plain: LayoutThroughput.Result?, unsharded: LayoutThroughput.Result?, unsplit: LayoutThroughput.Result?
        if layout.schedule == .interleaved {
            var other = layout
            other.schedule = .oneFOneB
            other.virtualStages = 1
            plain = try counterpart(other, ["--schedule", "1f1b", "--virtual-stages", "1"], "1f1b")
        }
        if layout.zeroStage > 0 && layout.dp > 1 {
            var other = layout
            other.zeroStage = 0
            unsharded = try counterpart(other, ["--zero", "0"], "zero0")
        }
        if layout.sequenceParallel {
            var other = layout
            other.sequenceParallel = false
            unsplit = try counterpart(other, ["--no-sequence-parallel"], "no-sp")
        }
        if json {
            Console.json(result.record + (plain.map { result.interleaving(against: $0).record } ?? []) + (unsharded.map(result.sharding) ?? [])
                         + (unsplit.map(result.sequenceParallelism) ?? []))
        } else {
            result.lines(model: options.model.name, batchPerReplica: options.batch, runDirectory: launcher.runDir!).forEach(Console.out)
            if let plain { result.interleaving(against: plain).lines.forEach(Console.out) }
            if let unsharded { result.shardingLines(against: unsharded).forEach(Console.out) }
            if let unsplit { result.sequenceParallelLines(against: unsplit).forEach(Console.out) }
        }
    }
}
