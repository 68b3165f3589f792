import ArgumentParser
import Collectives
import Foundation
import Training

/// Restarts failed runs from their newest valid checkpoint and reports every restart:
/// around self-launched workers (`fleet train --max-restarts N`) and around any command
/// (`fleet supervise --max-restarts N -- mpirun … fleet train …`).
struct RestartLog {
    struct Restart {
        let attempt: Int
        let failure: String
        let lastStep: Int?
        let resumeStep: Int?
        let detectedAfter: Double
        /// From the last completed step (its log line) to the supervisor seeing the failure.
        let sinceLastStep: Double?
        var stepsLost: Int? { lastStep.map { $0 - (resumeStep ?? 0) } }
    }

    var restarts: [Restart] = []
    let started = Date()
    /// Where the run checkpoints: a restart resumes from its newest complete checkpoint.
    var checkpointDirectory: String?
    var steps = 0
    /// The faults planned for the first attempt (listed in the report).
    var injected: [String] = []

    /// The step of the newest complete checkpoint (the one a restart resumes from).
    static func newestCheckpoint(_ directory: String?) -> Int? {
        guard let directory else { return nil }
        return CheckpointStore(directory: directory).complete().first?.step
    }

    /// Seconds since any rank last logged a completed step.
    static func sinceLastStep(runDir: String?) -> Double? {
        guard let runDir, let files = try? FileManager.default.contentsOfDirectory(atPath: runDir) else { return nil }
        let dates = files.filter { $0.hasSuffix(".steps.jsonl") }.compactMap {
            (try? FileManager.default.attributesOfItem(atPath: runDir + "/" + $0))?[.modificationDate] as? Date
        }
        return dates.max().map { Date().timeIntervalSince($0) }
    }

    /// The median step time (s) of the newest attempt's reporting logs.
    static func medianStep(runDir: String?) -> Double? {
        guard let runDir, let files = try? FileManager.default.contentsOfDirectory(atPath: runDir) else { return nil }
        var times: [Double] = []
        for file in files where file.hasSuffix(".steps.jsonl") {
            guard let text = try? String(contentsOfFile: runDir + "/" + file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                if let range = line.range(of: "\"step_ms\":"), let ms = Double(line[range.upperBound...].prefix { "0123456789.e-+".contains($0) }) {
                    times.append(ms / 1000)
                }
            }
        }
        return times.isEmpty ? nil : times.sorted()[times.count / 2]
    }

    /// The newest step any rank logged in `runDir` (rank-N.steps.jsonl), before it is overwritten.
    static func lastStep(runDir: String?) -> Int? {
        guard let runDir, let files = try? FileManager.default.contentsOfDirectory(atPath: runDir) else { return nil }
        var newest: Int?
        for file in files where file.hasSuffix(".steps.jsonl") {
            guard let text = try? String(contentsOfFile: runDir + "/" + file, encoding: .utf8),
                  let line = text.split(separator: "\n").last, let range = line.range(of: "\"step\":") else { continue }
            if let step = Int(line[range.upperBound...].prefix { $0.isNumber }) { newest = max(newest ?? 0, step) }
        }
        return newest
    }

    /// Runs `attempt(k)` until it succeeds or `maxRestarts` restarts are spent.
    mutating func run(maxRestarts: Int, runDir: String?, _ attempt: (Int) throws -> Void) throws {
        var k = 0
        while true {
            let began = Date()
            do {
                try attempt(k)
                report(finished: true, runDir: runDir)
                return
            } catch let error where !(error is ExitCode && (error as! ExitCode) == .success) {
                if case LocalLauncher.LaunchError.interrupted = error { throw error }
                let restart = Restart(attempt: k + 1, failure: "\(error)", lastStep: Self.lastStep(runDir: runDir),
                                      resumeStep: Self.newestCheckpoint(checkpointDirectory), detectedAfter: Date().timeIntervalSince(began),
                                      sinceLastStep: Self.sinceLastStep(runDir: runDir))
                restarts.append(restart)
                guard k < maxRestarts else {
                    report(finished: false, runDir: runDir)
                    throw FleetError("gave up after \(maxRestarts) restart(s); last failure: \(error)")
                }
                k += 1
                Console.err("fleet: attempt \(k) failed (\(error)); restarting every worker from the newest valid checkpoint (restart \(k) of \(maxRestarts))")
            }
        }
    }

    func report(finished: Bool, runDir: String?) {
        guard !restarts.isEmpty else { return }
        let wall = Date().timeIntervalSince(started)
        var lines = ["fault report: \(restarts.count) failure(s), \(finished ? "recovered" : "not recovered")"]
        for fault in injected { lines.append("  injected: \(fault)") }
        for r in restarts {
            var line = "  attempt \(r.attempt): \(r.failure)"
            if let last = r.lastStep { line += "; last step logged \(last)" }
            if let since = r.sinceLastStep { line += String(format: "; detected %.2f s after it", since) }
            if let lost = r.stepsLost { line += "; resumed from step \(r.resumeStep ?? 0), \(lost) step(s) recomputed" }
            lines.append(line + String(format: "; the attempt ran %.1f s", r.detectedAfter))
        }
        let lost = restarts.compactMap(\.stepsLost).reduce(0, +)
        if finished, steps > 0, let median = Self.medianStep(runDir: runDir) {
            // Goodput: the time the steps need (at the run's median step time) over the wall time spent.
            lines.append(String(format: "  %d step(s) recomputed; wall time %.1f s; goodput %.2f (useful step time %.1f s = %d steps × %.1f ms median)",
                                lost, wall, Double(steps) * median / wall, Double(steps) * median, steps, median * 1000))
        } else {
            lines.append(String(format: "  %d step(s) recomputed; wall time %.1f s", lost, wall))
        }
        Console.err(lines.joined(separator: "\n"))
    }
}

extension Train {
    /// `--max-restarts`: launches the workers (as self-launched ZeroMQ ranks, even one), and
    /// after a failure relaunches them all with --resume; faults act in the first attempt only.
    func superviseWorkers(_ base: WorkerOptions, steps: Int) throws {
        var log = RestartLog()
        log.checkpointDirectory = checkpoints.checkpointDir
        log.steps = steps
        log.injected = ((try? faultOptions.plan(worldSize: base.ranks, steps: steps))?.faults ?? []).map(\.description)
        try log.run(maxRestarts: faultOptions.maxRestarts, runDir: base.runDir) { attempt in
            var workers = base
            workers.launchAlways = true
            workers.extraEnvironment["FLEET_ATTEMPT"] = "\(attempt)"
            if attempt > 0 && !checkpoints.resume && checkpoints.resumeFrom == nil { workers.extraArguments = ["--resume"] }
            _ = try workers.workerTransport()
        }
        if let runDir = base.runDir, !json { Console.out("per-rank logs: \(runDir)/rank-*.log") }
    }
}

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command (e.g. mpirun … fleet train … --checkpoint-dir DIR) and restart it with --resume after a failure.",
        discussion: """
        OpenMPI aborts every rank about a second after one dies; the supervisor then starts the job again, adding \
        --resume so it continues from the newest valid checkpoint. Faults injected with --inject act in the first attempt only.

          fleet supervise --max-restarts 3 -- mpirun -n 4 fleet train gpt-tiny --dp 2 --pp 2 --checkpoint-dir runs/ck --checkpoint-every 10
        """)

    @Option(help: "Restarts before giving up.")
    var maxRestarts: Int = 3

    // Only what follows `--` is the command, so `--help` and fleet's own options before it stay fleet's.
    @Argument(parsing: .postTerminator, help: "The command to run (after --).")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else {
            throw ValidationError("fleet supervise needs a command after --, e.g. fleet supervise -- mpirun -n 4 fleet train gpt-tiny --checkpoint-dir runs/ck")
        }
    }

    func run() throws {
        try Console.reportingErrors {
            let executable = command[0]
            var log = RestartLog()
            try log.run(maxRestarts: maxRestarts, runDir: nil) { attempt in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : "/usr/bin/env")
                let arguments = Array(command.dropFirst()) + (attempt > 0 && !command.contains("--resume") ? ["--resume"] : [])
                process.arguments = executable.contains("/") ? arguments : [executable] + arguments
                var environment = ProcessInfo.processInfo.environment
                environment["FLEET_ATTEMPT"] = "\(attempt)"
                process.environment = environment
                try process.run()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    throw FleetError("\(executable) exited with status \(process.terminationStatus)")
                }
            }
        }
    }
}
