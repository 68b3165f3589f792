import Foundation
import Training
import Workload

/// The keys of a training step's timing breakdown, in seconds like the simulator's
/// (`step_s`, `compute_s`, …), shared by the step record, the per-rank logs and their readers.
public enum StepKey {
    public static let step = "step_s", compute = "compute_s", communication = "communication_s"
    public static let tensorParallel = "tensor_parallel_s", pipelineWait = "pipeline_wait_s", dataExposed = "dp_exposed_s"
    /// Expert parallelism's token all-to-alls, as the simulator's breakdown names them.
    public static let allToAll = "alltoall_s"
    /// Context parallelism's ring passes and K/V gradient reduce-scatters, as the simulator's breakdown names them.
    public static let context = "context_s"

    /// A duration in seconds from a step row; logs written before fleet used seconds named it `…_ms`.
    public static func seconds(_ row: [String: Any], _ key: String) -> Double? {
        if let value = row[key] as? Double { return value }
        let legacy = [step: "step_ms", compute: "compute_ms", communication: "communication_ms", tensorParallel: "tp_ms",
                      pipelineWait: "pipeline_wait_ms", dataExposed: "dp_exposed_ms"][key]
        return legacy.flatMap { row[$0] as? Double }.map { $0 / 1000 }
    }

    /// The breakdown of a step as ordered JSON fields.
    static func breakdown(_ r: DistributedTrainer.StepResult) -> [(String, Any)] {
        [(compute, r.computeSeconds), (communication, r.communicationSeconds), (tensorParallel, r.tensorSeconds),
         (pipelineWait, r.pipelineWaitSeconds), (dataExposed, r.exposedDataSeconds), (allToAll, r.expertSeconds), (context, r.contextSeconds)]
    }
}

/// One JSON line per step for one rank: its own timing breakdown and traffic.
public final class RankStepLog {
    private let fd: Int32
    private let path: String

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: PathName.directory(of: path), withIntermediateDirectories: true)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FleetError("cannot write \(path) (\(String(cString: strerror(errno)))); pass a writable --run-dir") }
        self.path = path
    }

    /// Appends one step; a full disk or a log removed mid-run is an error naming the file (a
    /// removed file would otherwise take every later step with it without a word).
    public func write(_ m: StepMetrics, _ r: DistributedTrainer.StepResult, rank: Int) throws {
        let fields: [(String, Any)] = [("rank", rank), ("step", m.step + 1), (StepKey.step, r.seconds)] + StepKey.breakdown(r)
            + [("tp_allreduces", r.traffic.tensorAllReduces), ("dp_allreduces", r.traffic.dataAllReduces),
               ("pp_messages", r.traffic.pipelineMessages)]
        var status = stat()
        if fstat(fd, &status) == 0, status.st_nlink == 0 { throw FileOutput.Failure(path: path, code: ENOENT) }
        try FileOutput.write(JSONLine.encode(fields) + "\n", to: fd, path: path)
    }

    deinit { close(fd) }
}
