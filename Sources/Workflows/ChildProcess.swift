import Collectives
import Foundation

/// Runs a program to completion and returns its status and output; both streams go through
/// files, so neither can fill a pipe and stall the child.
public enum ChildProcess {
    /// This fleet executable with `arguments`.
    public static func fleet(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(LocalLauncher.currentExecutable, arguments, environment: environment)
    }

    /// `unset` names variables of this process's environment the child must not see.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    unset: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let outcome = try bounded(executable, arguments, environment: environment, unset: unset)
        return (outcome.status, outcome.stdout, outcome.stderr)
    }

    /// How a child ended: its exit status (or the signal that killed it), and its output.
    public struct Outcome {
        public var status: Int32
        public var signaled: Bool
        /// Killed by us after `timeout`.
        public var timedOut: Bool
        public var stdout: String
        public var stderr: String
    }

    /// `run`, and with a `timeout` the child is killed (SIGKILL) once it has run that long.
    public static func bounded(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                        unset: [String] = [], timeout: Double? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty || !unset.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }.filter { !unset.contains($0.key) }
        }
        let base = NSTemporaryDirectory() + "fleet-child-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
        process.standardError = FileHandle(forWritingAtPath: base + ".err")
        try process.run()
        var timedOut = false
        if let timeout {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(2_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                timedOut = true
            }
        }
        process.waitUntilExit()
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return Outcome(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal, timedOut: timedOut,
                       stdout: read(base + ".out"), stderr: read(base + ".err"))
    }

    /// Runs `command` (a path, or a name looked up on PATH) with this process's terminal and
    /// environment plus `environment`, and returns its exit status.
    public static func attached(_ command: [String], environment: [String: String] = [:]) throws -> Int32 {
        let process = Process()
        let executable = command[0]
        process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : "/usr/bin/env")
        process.arguments = executable.contains("/") ? Array(command.dropFirst()) : command
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The first executable called `name` on PATH.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// mpirun on this one machine (shared memory and loopback only) unless a hostfile is set; as root it needs consent,
    /// and more ranks than cores need oversubscription.
    /// `pinned` binds rank r to core r mod cores (as fleet's own launcher does with FLEET_PIN_CORES).
    /// `hosts` (OpenMPI's `--host` list, `A:2,B:2`) places the ranks on other hosts.
    public static func mpirun(ranks: Int, pinned: Bool = false, hosts: String? = nil, _ arguments: [String]) -> (path: String, arguments: [String], environment: [String: String])? {
        guard let mpirun = which("mpirun") else { return nil }
        let inherited = ProcessInfo.processInfo.environment
        // A hostfile or a host list means other machines: then OpenMPI chooses its own networks.
        let elsewhere = inherited["OMPI_MCA_orte_default_hostfile"] != nil || hosts != nil
        var environment = elsewhere ? [:] : ["OMPI_MCA_btl": "self,vader", "OMPI_MCA_oob_tcp_if_include": "lo"]
        environment = environment.filter { inherited[$0.key] == nil }
        if getuid() == 0 { environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
        // On other hosts each host would bind its ranks from its own core 0 — test hosts share one
        // machine's cores, so they would pile onto the same ones: each rank pins itself to core
        // r mod cores instead, as fleet's own workers do. No host then counts itself
        // oversubscribed, so OpenMPI would spin in its waits and starve the rank sharing the
        // core (dp4 over two test hosts: 131 ms a step against 81 with yielding).
        // Over TCP, OpenMPI moves a message above its eager limit (64 KiB) only while the sender
        // is inside MPI: a pipeline stage's activations would wait for its next wait. Up to 1 MiB
        // goes at once instead (dp2·pp2 over two test hosts: 99.7 → 88.7 ms a step).
        let network = hosts == nil ? [] : ["--mca", "btl_tcp_eager_limit", "1048576", "--mca", "btl_tcp_max_send_size", "1048576"]
        let binding = !pinned ? [] : hosts == nil ? ["--bind-to", "core:overload-allowed", "--map-by", "core"]
            : ["--bind-to", "none", "-x", "FLEET_PIN_CORES=1", "--mca", "mpi_yield_when_idle", "1"]
        let placement = hosts.map { ["--host", $0] } ?? []
        return (mpirun, ["-n", "\(ranks)", "--oversubscribe"] + placement + network + binding + [LocalLauncher.currentExecutable] + arguments, environment)
    }
}
