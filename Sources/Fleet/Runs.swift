import ArgumentParser
import Foundation
import Workflows
import Workload

struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the run directories fleet made under runs/ (newest first, with their size), or remove all but the newest.",
        discussion: """
        fleet train (with workers), chaos, compare, supervise and bench make a directory per run under runs/ in the \
        current directory: logs, records, events, final weights. They are never removed by themselves; \
        prune never removes a run still in progress.
          fleet runs list
          fleet runs prune --keep 5
          fleet runs prune --keep 2 --kind chaos --dry-run
        """,
        subcommands: [RunsList.self, RunsPrune.self])
}

struct RunsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the run directories, newest first.")

    @Option(help: "Directory that holds the runs.")
    var dir: String = "runs"

    @Flag(help: "One JSON object per run.")
    var json = false

    func run() throws {
        let runs = RunDirectory.list(dir)
        if json {
            for run in runs {
                Console.json([("path", run.path), ("kind", run.kind), ("started", ISO8601DateFormatter().string(from: run.started)),
                              ("bytes", run.bytes), ("summary", run.summary ?? ""), ("active", run.active)])
            }
            return
        }
        guard !runs.isEmpty else { return Console.out("no runs in \(dir)/") }
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let table = Table(columns: [("started", 19), ("kind", 16), ("size", 10), ("run", 36), ("what", 0)])
        Console.out(table.header())
        for run in runs {
            Console.out(table.row([formatter.string(from: run.started), run.kind, Units.bytes(Double(run.bytes)),
                                   PathName.last(of: run.path), (run.active ? "(running) " : "") + (run.summary ?? "")]))
        }
        Console.out("\(runs.count) run(s), \(Units.bytes(Double(runs.reduce(0) { $0 + $1.bytes }))) in \(dir)/")
    }
}

struct RunsPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove all but the newest run directories.")

    @Option(parsing: .unconditional, help: "Run directories to keep (the newest).")
    var keep: Int

    @Option(help: "Only runs of this kind (train, chaos, compare, supervise, bench, …).")
    var kind: String?

    @Option(help: "Directory that holds the runs.")
    var dir: String = "runs"

    @Flag(help: "Say what would be removed, and remove nothing.")
    var dryRun = false

    func validate() throws {
        guard keep >= 0 else { throw ValidationError("--keep must be 0 or more") }
    }

    func run() throws {
        try Console.reportingErrors {
            let runs = RunDirectory.list(dir).filter { kind == nil || $0.kind == kind }
            let removed = try RunDirectory.prune(dir, keep: keep, kind: kind, dryRun: dryRun)
            let running = runs.filter(\.active).count
            for run in removed { Console.out("\(dryRun ? "would remove" : "removed") \(run.path) (\(Units.bytes(Double(run.bytes))))") }
            Console.out("\(removed.count) run(s), \(Units.bytes(Double(removed.reduce(0) { $0 + $1.bytes }))) \(dryRun ? "would be " : "")freed; "
                        + "\(runs.count - removed.count) \(dryRun ? "would be " : "")kept"
                        + (running > 0 ? " (\(running) still running, never removed)" : ""))
        }
    }
}
