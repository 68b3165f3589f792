import ArgumentParser
import Collectives
import Foundation
import Training
import Workflows

extension Train {
    /// `--max-restarts`: launches the workers (as self-launched ZeroMQ ranks, even one), and
    /// after a failure relaunches them all with --resume; faults act in the first attempt only.
    func superviseWorkers(_ base: WorkerOptions, steps: Int) throws {
        let runDir = base.runDir ?? "."
        var supervisor = Supervisor(maxRestarts: faultOptions.maxRestarts,
                                    channel: Settings.current.events ?? EventChannel(path: runDir + "/events.jsonl"))
        supervisor.checkpointDirectory = checkpoints.checkpointDir
        supervisor.steps = steps
        supervisor.injected = ((try? faultOptions.plan(worldSize: base.ranks, steps: steps))?.faults ?? []).map(\.description)
        supervisor.onRestart = Console.err
        let report = try supervisor.run { attempt, environment in
            var workers = base
            workers.launchAlways = true
            workers.extraEnvironment.merge(environment) { _, new in new }
            if attempt > 0 && !checkpoints.resume && checkpoints.resumeFrom == nil { workers.extraArguments = ["--resume"] }
            _ = try workers.workerTransport()
        }
        try Supervise.finish(report, maxRestarts: faultOptions.maxRestarts)
        if let runDir = base.runDir, !json { Console.out("per-rank logs: \(runDir)/rank-*.log") }
    }
}

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command (e.g. mpirun … fleet train … --checkpoint-dir DIR) and restart it with --resume after a failure.",
        discussion: """
        OpenMPI aborts every rank about a second after one dies; the supervisor then starts the job again, adding \
        --resume so it continues from the newest valid checkpoint. Faults injected with --inject act in the first attempt only. \
        The command's fleet processes report their steps and failures on an event channel (FLEET_EVENTS, a JSON-lines file \
        in the supervisor's run directory), from which the fault report counts the steps recomputed.

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
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must be 0 or more") }
    }

    func run() throws {
        try Console.reportingErrors {
            let executable = command[0]
            let channel = try Settings.current.events ?? EventChannel(path: RunDirectory.create("supervise") + "/events.jsonl")
            var supervisor = Supervisor(maxRestarts: maxRestarts, channel: channel)
            // The checkpoint directory the command names: a restart resumes from its newest checkpoint.
            supervisor.checkpointDirectory = command.firstIndex(of: "--checkpoint-dir").flatMap { $0 + 1 < command.count ? command[$0 + 1] : nil }
            supervisor.onRestart = Console.err
            let report = try supervisor.run { attempt, environment in
                let status = try ChildProcess.attached(command + (attempt > 0 && !command.contains("--resume") ? ["--resume"] : []),
                                                       environment: environment)
                guard status == 0 else { throw FleetError("\(executable) exited with status \(status)", duringRun: true) }
            }
            Console.err("events: \(channel.path)")
            try Self.finish(report, maxRestarts: maxRestarts)
        }
    }

    /// Prints the fault report; a run that did not recover is an error.
    static func finish(_ report: SupervisionReport, maxRestarts: Int) throws {
        let lines = report.lines
        if !lines.isEmpty { Console.err(lines.joined(separator: "\n")) }
        if !report.recovered {
            throw FleetError("gave up after \(maxRestarts) restart(s); last failure: \(report.lastError ?? "?")", duringRun: true)
        }
    }
}
