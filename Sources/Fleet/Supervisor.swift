import ArgumentParser
import Collectives
import Foundation

/// Restarts failed runs from their newest valid checkpoint and reports every restart:
/// around self-launched workers (`fleet train --max-restarts N`) and around any command
/// (`fleet supervise --max-restarts N -- mpirun … fleet train …`).
struct RestartLog {
    struct Restart {
        let attempt: Int
        let failure: String
        let lastStep: Int?
        let detectedAfter: Double
    }

    var restarts: [Restart] = []
    let started = Date()

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
                report(finished: true)
                return
            } catch let error where !(error is ExitCode && (error as! ExitCode) == .success) {
                if case LocalLauncher.LaunchError.interrupted = error { throw error }
                let restart = Restart(attempt: k + 1, failure: "\(error)", lastStep: Self.lastStep(runDir: runDir),
                                      detectedAfter: Date().timeIntervalSince(began))
                restarts.append(restart)
                guard k < maxRestarts else {
                    report(finished: false)
                    throw FleetError("gave up after \(maxRestarts) restart(s); last failure: \(error)")
                }
                k += 1
                Console.err("fleet: attempt \(k) failed (\(error)); restarting every worker from the newest valid checkpoint (restart \(k) of \(maxRestarts))")
            }
        }
    }

    func report(finished: Bool) {
        guard !restarts.isEmpty else { return }
        var lines = ["fault report: \(restarts.count) failure(s), \(finished ? "recovered" : "not recovered")"]
        for r in restarts {
            lines.append("  attempt \(r.attempt): \(r.failure)" + (r.lastStep.map { "; last step logged \($0)" } ?? "")
                + String(format: "; it ran %.1f s", r.detectedAfter))
        }
        lines.append(String(format: "  wall time %.1f s (each restart resumed from the newest valid checkpoint; steps after it were recomputed)",
                            Date().timeIntervalSince(started)))
        Console.err(lines.joined(separator: "\n"))
    }
}

extension Train {
    /// `--max-restarts`: launches the workers (as self-launched ZeroMQ ranks, even one), and
    /// after a failure relaunches them all with --resume; faults act in the first attempt only.
    func superviseWorkers(_ base: WorkerOptions, steps: Int) throws {
        var log = RestartLog()
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
        OpenMPI aborts every rank about a second after one dies; the supervisor then starts the job again, adding
        --resume so it continues from the newest valid checkpoint. Faults injected with --inject act in the first attempt only.
          fleet supervise --max-restarts 3 -- mpirun -n 4 fleet train gpt-tiny --dp 2 --pp 2 --checkpoint-dir runs/ck --checkpoint-every 10
        """)

    @Option(help: "Restarts before giving up.")
    var maxRestarts: Int = 3

    @Argument(parsing: .captureForPassthrough, help: "The command to run (after --).")
    var command: [String] = []

    func run() throws {
        try Console.reportingErrors {
            var command = self.command
            if command.first == "--" { command.removeFirst() }
            guard let executable = command.first else { throw FleetError("fleet supervise needs a command after --") }
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
