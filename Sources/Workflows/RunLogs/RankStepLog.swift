import Foundation
import Training
import Workload

/// One JSON line per step for one rank: its own timing breakdown and traffic.
public final class RankStepLog {
    private let handle: FileHandle

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: PathName.directory(of: path), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw FleetError("cannot write \(path); pass a writable --run-dir")
        }
        self.handle = handle
    }

    public func write(_ m: StepMetrics, _ r: DistributedTrainer.StepResult, rank: Int) {
        let fields: [(String, Any)] = [("rank", rank), ("step", m.step + 1), ("step_ms", r.seconds * 1000), ("compute_ms", r.computeSeconds * 1000),
                                       ("tp_ms", r.tensorSeconds * 1000), ("pipeline_wait_ms", r.pipelineWaitSeconds * 1000),
                                       ("dp_exposed_ms", r.exposedDataSeconds * 1000), ("tp_allreduces", r.traffic.tensorAllReduces),
                                       ("dp_allreduces", r.traffic.dataAllReduces), ("pp_messages", r.traffic.pipelineMessages)]
        handle.write(Data((JSONLine.encode(fields) + "\n").utf8))
    }

    deinit { try? handle.close() }
}
