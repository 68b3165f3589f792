import CFleetSys
import Foundation

/// Starts `ranks` worker processes of one executable on this machine, wired together
/// over ZeroMQ, and waits for them. If any worker fails, the others are stopped; if
/// the launcher is interrupted (Ctrl-C, SIGTERM) or killed, so are the workers.
public struct LocalLauncher {
    public enum Endpoints: String, Sendable { case ipc, tcp }

    public var ranks: Int
    public var executable: String
    /// A worker's arguments, given its role (which travels on its command line).
    public var arguments: @Sendable (WorkerRole) -> [String]
    public var endpoints: Endpoints = .ipc
    /// Extra environment for every worker (e.g. `OPENBLAS_NUM_THREADS`).
    public var environment: [String: String] = [:]
    /// How long stopped workers get to exit after SIGTERM before SIGKILL.
    public var gracePeriod: Duration = .seconds(2)
    /// When set, each worker's output (stdout and stderr) is also kept in `rank-N.log` here,
    /// while the launcher's own output shows all of it merged.
    public var logDirectory: String?
    /// Hosts to start the workers on through `agent` (`AGENT HOST 'COMMAND'`), over TCP
    /// bound to each host's own address; nil: this machine.
    public var hosts: LaunchHosts?
    public var agent = LaunchHosts.agent()

    public init(ranks: Int, executable: String = LocalLauncher.currentExecutable, arguments: @escaping @Sendable (WorkerRole) -> [String]) {
        self.ranks = ranks
        self.executable = executable
        self.arguments = arguments
    }

    /// The running binary (resolved through /proc, so relaunching works from any directory).
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// How one worker ended.
    public struct Exit: Sendable, CustomStringConvertible {
        public let rank: Int
        public let status: Int32
        public let signaled: Bool
        public var succeeded: Bool { !signaled && status == 0 }

        public init(rank: Int, status: Int32, signaled: Bool) {
            self.rank = rank
            self.status = status
            self.signaled = signaled
        }

        /// How `process` (rank `rank`) ended.
        init(rank: Int, _ process: Process) {
            self.init(rank: rank, status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal)
        }
        public var description: String {
            signaled ? "rank \(rank) was killed by signal \(status)" : "rank \(rank) exited with code \(status)"
        }
    }

    public enum LaunchError: Error, CustomStringConvertible {
        case workerFailed(first: Exit, all: [Exit])
        /// The launcher was signalled; `exits` are the workers' once stopped (preempted ones saved a checkpoint).
        case interrupted(signal: Int32, exits: [Exit])
        case cannotStart(String)

        public var description: String {
            switch self {
            case let .workerFailed(first, all):
                let others = all.filter { $0.rank != first.rank && !$0.succeeded }.map { "\($0)" }
                return "\(first)" + (others.isEmpty ? "" : "; then \(others.joined(separator: ", "))")
                    + "; the other workers were stopped (see the failing rank's message above)"
            case let .interrupted(signal, _):
                return "interrupted by signal \(signal); all workers were stopped"
            case let .cannotStart(reason):
                return "cannot start workers: \(reason)"
            }
        }
    }

    /// Runs the workers to completion. Returns their exits when all succeed.
    @discardableResult
    public func run() throws -> [Exit] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("fleet-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        // Only this user may reach the ipc sockets inside.
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let placement = try hosts?.placement(ranks: ranks)
        let coordinator = try placement.map { "tcp://\($0[0]):\(Self.randomPort())" }
            ?? (endpoints == .ipc ? "ipc://\(directory.path)/coordinator" : "tcp://127.0.0.1:\(Self.freePort())")

        // Over TCP anyone who reaches a port could join: the job's key keeps them out (ipc
        // sockets sit in this user's private directory).
        let key = placement != nil || endpoints == .tcp ? try JobKey.generate() : nil
        let interrupts = SignalWatcher(signals: [SIGINT, SIGTERM, SIGHUP])
        defer { interrupts.stop() }
        var processes: [Process] = []
        var logs: [RankLog] = []
        defer {
            Self.stop(processes, grace: gracePeriod)
            logs.forEach { $0.close() }
        }
        if let logDirectory {
            do { try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true) } catch {
                throw LaunchError.cannotStart("cannot create the run directory \(logDirectory): \(error.localizedDescription)")
            }
        }
        for rank in 0..<ranks {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            let role = WorkerRole(rank: rank, worldSize: ranks, coordinator: coordinator,
                                  bind: placement.map { "tcp://\($0[rank]):*" } ?? (endpoints == .ipc ? "ipc://\(directory.path)/r\(rank)" : "tcp://127.0.0.1:*"),
                                  launcherPID: placement == nil ? getpid() : WorkerRole.launchAgent, runDirectory: logDirectory)
            process.arguments = arguments(role)
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            process.environment![JobKey.variable] = key?.secretKey
            var keyInput: Pipe?
            if let placement {
                // Through the agent, with the environment a remote shell would not pass on; the
                // key goes through its standard input, never on a command line others can list.
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                let readKey = key == nil ? "" : "IFS= read -r \(JobKey.variable) && export \(JobKey.variable) && "
                process.arguments = agent + [placement[rank], readKey + LaunchHosts.shellLine(["env"] + remoteEnvironment() + [executable] + arguments(role))]
                process.environment![JobKey.variable] = nil
                keyInput = Pipe()
                process.standardInput = keyInput
            }
            if let logDirectory {
                let log = try RankLog(path: "\(logDirectory)/rank-\(rank).log")
                process.standardOutput = log.stdout
                process.standardError = log.stderr
                logs.append(log)
            }
            do { try process.run() } catch { throw LaunchError.cannotStart("\(executable): \(error)") }
            if let keyInput {
                if let key { keyInput.fileHandleForWriting.write(Data((key.secretKey + "\n").utf8)) }
                try? keyInput.fileHandleForWriting.close()
            }
            processes.append(process)
        }
        var exits: [Int: Exit] = [:]
        while exits.count < ranks {
            if let signal = interrupts.received {
                // Workers asked to stop may first save a checkpoint (within the grace period).
                Self.stop(processes, grace: gracePeriod)
                throw LaunchError.interrupted(signal: signal, exits: processes.enumerated().map { Exit(rank: $0, $1) })
            }
            for (rank, process) in processes.enumerated() where exits[rank] == nil && !process.isRunning {
                let exit = Exit(rank: rank, process)
                exits[rank] = exit
                if let placement, !exit.signaled, exit.status == 255 {
                    // ssh's own failure (and the test hosts' agent's): the worker never started.
                    Self.stop(processes, grace: .zero)
                    throw LaunchError.cannotStart("the launch agent '\(agent.joined(separator: " "))' could not start rank \(rank) on host \(placement[rank]) "
                        + "(exit 255, its message is above): check that the host is reachable that way, or set FLEET_LAUNCH_AGENT")
                }
                if !exit.succeeded {
                    // The others wait on a dead peer: nothing of theirs is worth a grace period
                    // (and a worker that saves on SIGTERM would only wait for its timeout).
                    Self.stop(processes, grace: .zero)
                    let all = processes.enumerated().map { r, p in
                        exits[r] ?? Exit(rank: r, p)
                    }
                    throw LaunchError.workerFailed(first: exit, all: all)
                }
            }
            usleep(10_000)
        }
        return (0..<ranks).map { exits[$0]! }
    }

    /// SIGTERM every running process, then SIGKILL whatever is left after `grace`.
    static func stop(_ processes: [Process], grace: Duration) {
        let running = processes.filter(\.isRunning)
        guard !running.isEmpty else { return }
        running.forEach { kill($0.processIdentifier, SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: grace)
        while running.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(10_000) }
        running.filter(\.isRunning).forEach { kill($0.processIdentifier, SIGKILL) }
        running.forEach { $0.waitUntilExit() }
    }

    /// A TCP port that was free a moment ago, for the coordinator.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw LaunchError.cannotStart("no free TCP port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Call first thing in a worker: it dies with its launcher, and refuses to run if the launcher is already gone.
    /// A worker started on another host dies with the launch agent's process that started it.
    public static func bindToLauncher(_ launcher: Int32?) {
        guard let launcher else { return }
        _ = fleet_set_parent_death_signal(SIGKILL)
        if launcher == WorkerRole.launchAgent ? getppid() == 1 : getppid() != launcher { exit(1) }
    }

    /// `FLEET_*`, `OPENBLAS_*` and `OMP_*` of this process and the workers' own variables, as `K=V` words.
    func remoteEnvironment() -> [String] {
        let mine = ProcessInfo.processInfo.environment.filter { key, _ in
            ["FLEET_", "OPENBLAS_", "OMP_"].contains { key.hasPrefix($0) } && key != JobKey.variable
        }
        return mine.merging(environment) { _, new in new }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// A port for a coordinator on another host (which this machine cannot probe): one from
    /// the dynamic range; a taken one fails rank 0's bind with the address in its error.
    static func randomPort() -> Int { Int.random(in: 49152...65000) }
}

/// Copies one worker's output to its log file and to the launcher's own stdout/stderr.
final class RankLog: @unchecked Sendable {   // a lock guards the writes to the file and the launcher's output
    let stdout = Pipe(), stderr = Pipe()
    private let file: FileHandle
    private let lock = NSLock()

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
            throw LocalLauncher.LaunchError.cannotStart("cannot create the log file \(path)")
        }
        self.file = file
        stdout.fileHandleForReading.readabilityHandler = { [weak self] in self?.copy($0.availableData, to: .standardOutput) }
        stderr.fileHandleForReading.readabilityHandler = { [weak self] in self?.copy($0.availableData, to: .standardError) }
    }

    private func copy(_ data: Data, to terminal: FileHandle) {
        guard !data.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        file.write(data)
        terminal.write(data)
    }

    /// Copies whatever is still buffered, then closes the file.
    func close() {
        stdout.fileHandleForReading.readabilityHandler = nil
        stderr.fileHandleForReading.readabilityHandler = nil
        copy(stdout.fileHandleForReading.readDataToEndOfFile(), to: .standardOutput)
        copy(stderr.fileHandleForReading.readDataToEndOfFile(), to: .standardError)
        try? file.close()
    }
}

/// Records the first of some signals without dying of it (the launcher needs to clean up first).
public final class SignalWatcher: @unchecked Sendable {   // a lock guards `first`; the sources are set once, in init
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var first: Int32?
    private let queue = DispatchQueue(label: "fleet.signals")

    public init(signals: [Int32]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                if self.first == nil { self.first = number }
                self.lock.unlock()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// The first of the signals that arrived, if any.
    public var received: Int32? { lock.lock(); defer { lock.unlock() }; return first }

    public func stop() {
        sources.forEach { $0.cancel() }
        sources.removeAll()
    }
}
