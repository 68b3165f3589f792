import Foundation

/// The per-rank step logs (`rank-N.steps.jsonl`) of one run, reduced to what a comparison
/// needs: the job's step time per step (the slowest rank's), and each part of the step
/// averaged over ranks.
public struct StepLogs {
    /// Job step times in seconds, warm-up steps left out.
    public var steps: [Double] = []
    public var compute = 0.0, communication = 0.0, bubble = 0.0

    /// No steps (a layout not measured yet).
    public init() {}

    public init(directory: String, ranks: Int, warmup: Int) throws {
        var perRank: [[[String: Any]]] = []
        for rank in 0..<ranks {
            let path = "\(directory)/rank-\(rank).steps.jsonl"
            guard let rows = Self.rows(path) else { throw FleetError("the run left no step log at \(path)", duringRun: true) }
            guard rows.count > warmup else { throw FleetError("\(path) has \(rows.count) steps; more than the \(warmup) warm-up step(s) are needed", duringRun: true) }
            perRank.append(Array(rows.dropFirst(warmup)))
        }
        let count = perRank.map(\.count).min() ?? 0
        func value(_ row: [String: Any], _ key: String) -> Double { StepKey.seconds(row, key) ?? 0 }
        steps = (0..<count).map { i in perRank.map { value($0[i], StepKey.step) }.max()! }
        func median(_ key: String) -> Double {
            perRank.map { rows in Self.median(rows.prefix(count).map { value($0, key) }) }.reduce(0, +) / Double(ranks)
        }
        compute = median(StepKey.compute)
        communication = median(StepKey.tensorParallel) + median(StepKey.dataExposed)
        bubble = median(StepKey.pipelineWait)
    }

    /// One rank's step log, a JSON object per step; nil when it cannot be read.
    public static func rows(_ path: String) -> [[String: Any]]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// How much the run changed pace: the slowest third of its steps' median over the fastest
    /// third's, less 1 (0.5: one third stepped 50 % slower). This VM can switch between two
    /// paces mid-run (dp2: 117 ms a step, then 65–73 from step 26) while a probe before the run
    /// reads its usual speed; a run like that measures the hour, not the layout. 0 under 6 steps.
    public var paceSpread: Double {
        guard steps.count >= 6 else { return 0 }
        let third = steps.count / 3
        let medians = [steps[..<third], steps[third..<(2 * third)], steps[(2 * third)...]].map { Self.median(Array($0)) }
        return medians.max()! / max(medians.min()!, 1e-12) - 1
    }

    public static func median(_ values: [Double]) -> Double { Measurement.quantile(values, 0.5) }
    public static func quantile(_ values: [Double], _ q: Double) -> Double { Measurement.quantile(values, q) }
}

/// One rank's step log averaged (seconds), the first step (allocation, page faults) left out.
public struct RankAverage: Sendable {
    public let rank: Int
    public var step = 0.0, compute = 0.0, tensor = 0.0, pipelineWait = 0.0, dataExposed = 0.0

    public init(rank: Int, path: String) throws {
        guard let rows = StepLogs.rows(path) else { throw FleetError("the run left no step log at \(path)", duringRun: true) }
        let measured = rows.count > 1 ? Array(rows.dropFirst()) : rows
        func mean(_ key: String) -> Double { measured.compactMap { StepKey.seconds($0, key) }.reduce(0, +) / Double(max(1, measured.count)) }
        self.rank = rank
        step = mean(StepKey.step)
        compute = mean(StepKey.compute)
        tensor = mean(StepKey.tensorParallel)
        pipelineWait = mean(StepKey.pipelineWait)
        dataExposed = mean(StepKey.dataExposed)
    }
}
