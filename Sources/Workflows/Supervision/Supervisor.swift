import Collectives
import Foundation
import Training

/// Restarts a failed run from its newest valid checkpoint, up to `maxRestarts` times, and
/// accounts for every restart from the run's event channel: around self-launched workers
/// (`fleet train --max-restarts N`) and around any command (`fleet supervise -- mpirun …`).
public struct Supervisor {
    public var maxRestarts: Int
    /// Where the run checkpoints: a restart resumes from its newest complete checkpoint.
    public var checkpointDirectory: String?
    /// The run's steps (for goodput; 0 when unknown).
    public var steps = 0
    /// The faults planned for the first attempt (listed in the report).
    public var injected: [String] = []
    public let channel: EventChannel
    /// Told about each failed attempt before the next starts (a line for the terminal).
    public var onRestart: (String) -> Void = { _ in }

    public init(maxRestarts: Int, channel: EventChannel) {
        self.maxRestarts = maxRestarts
        self.channel = channel
    }

    /// Runs `attempt(k, environment)` until it succeeds or the restarts are spent; the
    /// environment (the event channel and the attempt number) is for the attempt's processes.
    /// A signal to the launcher (`LaunchError.interrupted`) is not a failure: it is rethrown.
    public func run(_ attempt: (Int, [String: String]) throws -> Void) throws -> SupervisionReport {
        var report = SupervisionReport(steps: steps, injected: injected)
        let started = Date()
        for k in 0...maxRestarts {
            let began = Date()
            do {
                try attempt(k, [EventChannel.variable: channel.path, Self.attemptVariable: "\(k)"])
                report.recovered = true
                break
            } catch {
                if case LocalLauncher.LaunchError.interrupted = error { throw error }
                let failed = self.failure(of: k, error: error, began: began)
                channel.emit(failed)
                report.failures.append(failed)
                report.lastError = "\(error)"
                if k < maxRestarts {
                    onRestart("fleet: attempt \(k + 1) failed (\(error)); restarting every worker from the newest valid checkpoint (restart \(k + 1) of \(maxRestarts))")
                }
            }
        }
        let events = channel.read()
        report.wallSeconds = Date().timeIntervalSince(started)
        report.stepTimes = events.filter { $0.event == .step }.compactMap(\.stepSeconds)
        var finished = RunEvent(.finished, attempt: report.failures.count)
        finished.recovered = report.recovered
        finished.restarts = report.failures.count
        finished.recomputedSteps = report.recomputedSteps
        finished.wallSeconds = report.wallSeconds
        channel.emit(finished)
        return report
    }

    /// The environment variable that tells a restarted process which attempt it belongs to.
    public static let attemptVariable = "FLEET_ATTEMPT"

    /// What attempt `k` left on the channel: its newest step, the rank failure that explains
    /// it, and the checkpoint the next attempt resumes from.
    func failure(of k: Int, error: Error, began: Date) -> RunEvent {
        let events = channel.read().filter { $0.attempt == k }
        let steps = events.filter { $0.event == .step }
        let failures = events.filter { $0.event == .failure }
        var event = RunEvent(.attemptFailed, attempt: k)
        event.message = "\(error)"
        event.cause = Self.cause(of: error, rankFailures: failures)
        event.step = steps.compactMap(\.step).max()
        event.sinceLastStepSeconds = steps.map(\.time).max().map { event.time - $0 }
        event.ranSeconds = event.time - began.timeIntervalSince1970
        event.resumeStep = checkpointDirectory.flatMap { CheckpointStore(directory: $0).complete().first?.step } ?? 0
        return event
    }

    /// The root cause: the first worker to fail, when the launcher knows it (a killed process
    /// explains the errors its peers report after it); otherwise the first rank to report one.
    static func cause(of error: Error, rankFailures: [RunEvent]) -> FailureCause {
        if case let LocalLauncher.LaunchError.workerFailed(first, _) = error {
            if !first.signaled, let own = rankFailures.first(where: { $0.rank == first.rank })?.cause { return own }
            return FailureCause(error)
        }
        if let first = rankFailures.first?.cause { return first }
        let cause = FailureCause(error)
        return cause == .other ? .commandFailed : cause
    }
}

/// What a supervised run went through: each failed attempt, whether it finished, and what the
/// failures cost.
public struct SupervisionReport: Sendable {
    public var failures: [RunEvent] = []
    public var recovered = false
    public var lastError: String?
    public var wallSeconds = 0.0
    /// Every step time (s) the ranks reported, all attempts.
    public var stepTimes: [Double] = []
    public var steps: Int
    public var injected: [String]

    /// Steps done twice: from each resume point to the newest step before its failure.
    public var recomputedSteps: Int {
        failures.reduce(0) { $0 + max(0, ($1.step ?? 0) - ($1.resumeStep ?? 0)) }
    }

    /// The report's lines for a terminal; none when nothing failed.
    public var lines: [String] {
        guard !failures.isEmpty else { return [] }
        var lines = ["fault report: \(failures.count) failure(s), \(recovered ? "recovered" : "not recovered")"]
        for fault in injected { lines.append("  injected: \(fault)") }
        for f in failures {
            var line = "  attempt \(f.attempt + 1): \(f.message ?? "?") [\(f.cause?.title ?? "failure")]"
            if let last = f.step { line += "; last step logged \(last)" }
            if let since = f.sinceLastStepSeconds { line += String(format: "; detected %.2f s after it", since) }
            if let last = f.step { line += "; resumed from step \(f.resumeStep ?? 0), \(max(0, last - (f.resumeStep ?? 0))) step(s) recomputed" }
            lines.append(line + String(format: "; the attempt ran %.1f s", f.ranSeconds ?? 0))
        }
        if recovered, steps > 0, !stepTimes.isEmpty {
            // Goodput: the time the steps need (at the run's median step time) over the wall time spent.
            let median = Measurement.quantile(stepTimes, 0.5)
            lines.append(String(format: "  %d step(s) recomputed; wall time %.1f s; goodput %.2f (useful step time %.1f s = %d steps × %.1f ms median)",
                                recomputedSteps, wallSeconds, Double(steps) * median / wallSeconds, Double(steps) * median, steps, median * 1000))
        } else {
            lines.append(String(format: "  %d step(s) recomputed; wall time %.1f s", recomputedSteps, wallSeconds))
        }
        return lines
    }
}
