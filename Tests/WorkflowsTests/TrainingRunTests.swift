import Collectives
import Foundation
import Parallelism
import Training
import Workflows
import Workload
import XCTest

/// A training run's workflow on in-process ranks: what it leaves behind (rank logs, the
/// reporter's record, events), what `fleet diff` reads back, and a resume with nothing left.
final class TrainingRunTests: TemporaryDirectoryTestCase {
    func configuration(steps: Int) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: ModelCatalog.gptTiny)
        c.batch = 4
        c.sequence = 32
        c.steps = steps
        c.evalBatches = 1
        return c
    }

    /// Runs `layout` on threads of this process into `runDirectory`; returns the reporter's step count.
    func train(_ layout: ParallelLayout, steps: Int, runDirectory: String, checkpoints: String? = nil) throws -> Int {
        let c = configuration(steps: steps), channel = EventChannel(path: runDirectory + "/events.jsonl")
        let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(60)) { transport -> Int in
            let trainer = try DistributedTrainer(configuration: c, layout: layout, transport: transport, corpus: .builtIn())
            if let checkpoints { trainer.checkpointing = CheckpointPolicy(directory: checkpoints, every: steps) }
            var run = TrainingRun(trainer: trainer)
            run.runDirectory = runDirectory
            run.events = channel
            var reported = 0
            guard case .finished = try run.run(report: { _, _ in reported += 1 }) else { return -1 }
            return reported
        }
        return try results.map { try $0.get() }.max() ?? 0
    }

    func testARunLeavesItsRecordLogsAndEvents() throws {
        let run = directory + "/dp2"
        XCTAssertEqual(try train(ParallelLayout(dp: 2), steps: 3, runDirectory: run), 3, "the reporter saw every step")
        for rank in 0..<2 {
            XCTAssertEqual(StepLogs.rows(run + "/rank-\(rank).steps.jsonl")?.count, 3, "rank \(rank) logged its steps")
        }
        let record = try RunRecord(directory: run)
        XCTAssertEqual(record.steps.map(\.step), [1, 2, 3])
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/final.weights"))
        let events = EventChannel(path: run + "/events.jsonl").read()
        XCTAssertEqual(events.filter { $0.event == .step }.count, 6, "a step event per rank per step")
        XCTAssertEqual(Set(events.compactMap(\.rank)), [0, 1])
        // The same run again is bitwise the same, and a different seed is not.
        let again = directory + "/again"
        _ = try train(ParallelLayout(dp: 2), steps: 3, runDirectory: again)
        let diff = RunDiff(record, try RunRecord(directory: again))
        XCTAssertNil(diff.firstDifference)
        XCTAssertEqual(diff.commonSteps, 3)
        XCTAssertEqual(try diff.weights()?.differing.count, 0)
    }

    func testResumingARunThatHasNothingLeftIsRefused() throws {
        let checkpoints = directory + "/ck"
        _ = try train(ParallelLayout(), steps: 2, runDirectory: directory + "/first", checkpoints: checkpoints)
        let (checkpoint, _) = CheckpointStore(directory: checkpoints).newestValid()
        let loaded = try XCTUnwrap(checkpoint)
        let results = LocalFabric.run(worldSize: 1) { transport -> String in
            let trainer = try DistributedTrainer(configuration: self.configuration(steps: 2), layout: ParallelLayout(), transport: transport, corpus: .builtIn())
            let run = TrainingRun(trainer: trainer)
            do { try run.resume(from: loaded, savesElsewhere: false) } catch { return "\(error)" }
            return "resumed"
        }
        let answer = try results[0].get()
        XCTAssertTrue(answer.contains("nothing is left to train"), answer)
    }
}
