import ArgumentParser
import Collectives

/// `fleet worker …` (hidden): how fleet's launcher starts each worker. The role (rank, world,
/// rendezvous, launcher) comes on the command line, then the command every worker runs, e.g.
/// `fleet worker --rank 1 --world-size 4 --coordinator ipc://… --bind ipc://… -- train gpt-tiny --dp 2 --pp 2`.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one worker of a self-launched world (started by fleet's launcher).", shouldDisplay: false)

    @Option(help: "This worker's rank.")
    var rank: Int

    @Option(help: "Workers in the world.")
    var worldSize: Int

    @Option(help: "Rank 0's rendezvous address.")
    var coordinator: String

    @Option(help: "This worker's inbox address.")
    var bind: String

    @Option(help: "The launcher's process id (the worker dies with it).")
    var launcherPid: Int32?

    @Option(help: "The run directory the launcher keeps the logs in.")
    var runDir: String?

    @Argument(parsing: .postTerminator, help: "The fleet command every worker runs (after --).")
    var command: [String] = []

    func validate() throws {
        guard worldSize >= 1, (0..<worldSize).contains(rank) else { throw ValidationError("--rank must be in 0..<--world-size") }
        guard !command.isEmpty else { throw ValidationError("fleet worker needs the command to run after --") }
    }

    func run() throws {
        Settings.launchedAs = WorkerRole(rank: rank, worldSize: worldSize, coordinator: coordinator, bind: bind,
                                         launcherPID: launcherPid, runDirectory: runDir)
        var inner: ParsableCommand
        do { inner = try Fleet.parseAsRoot(command) } catch { Fleet.finish(error) }
        guard !(inner is Worker) else { throw ValidationError("a worker cannot start another worker") }
        do { try inner.run() } catch { Fleet.finish(error) }
    }
}
