import Foundation
import XCTest

/// Runs the real `fleet` binary (and mpirun) with a time bound, and checks that no
/// process it started outlives the test.
enum FleetProcess {
    struct Outcome {
        let status: Int32
        let stdoutBytes: [UInt8]
        var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
        let stderr: String
        let seconds: Double
        var output: String { stdout + stderr }
    }

    /// The directory that holds the test bundle, and so the `fleet` binary.
    static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    static var binary: String { productsDirectory.appendingPathComponent("fleet").path }

    /// Single-machine OpenMPI: loopback only, root allowed, more ranks than cores.
    static let mpiEnvironment = [
        "OMPI_MCA_btl": "self,vader", "OMPI_MCA_oob_tcp_if_include": "lo",
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1", "OPENBLAS_NUM_THREADS": "1",
    ]

    static func fleet(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> Outcome {
        try run(binary, arguments, environment: environment, timeout: timeout)
    }

    /// Ranks a layout's flags ask for: the product of --dp, --tp and --pp (flags without values may sit between).
    static func ranks(of layout: [String]) -> Int {
        zip(layout, layout.dropFirst()).reduce(1) { product, pair in
            ["--dp", "--tp", "--pp"].contains(pair.0) ? product * (Int(pair.1) ?? 1) : product
        }
    }

    static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> Outcome {
        try run("/usr/bin/mpirun", ["-n", "\(ranks)", binary] + arguments,
                environment: mpiEnvironment.merging(environment) { _, new in new }, timeout: timeout)
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String], timeout: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var inherited = ProcessInfo.processInfo.environment
        // scripts/test.sh gives this test process fleet's kernel; fleet processes choose their own, as in a user's shell.
        if let kernel = inherited.removeValue(forKey: "FLEET_TEST_PROCESS_CORETYPE"), inherited["OPENBLAS_CORETYPE"] == kernel {
            inherited.removeValue(forKey: "OPENBLAS_CORETYPE")
        }
        process.environment = inherited.merging(environment) { _, new in new }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let collected = Collected()
        out.fileHandleForReading.readabilityHandler = { collected.append(\.out, $0.availableData) }
        err.fileHandleForReading.readabilityHandler = { collected.append(\.err, $0.availableData) }
        let start = Date()
        try process.run()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            usleep(500_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            XCTFail("\(executable) \(arguments.joined(separator: " ")) ran past \(timeout) s and was killed")
        }
        process.waitUntilExit()
        usleep(50_000)
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        collected.append(\.out, out.fileHandleForReading.readDataToEndOfFile())
        collected.append(\.err, err.fileHandleForReading.readDataToEndOfFile())
        return Outcome(status: process.terminationStatus, stdoutBytes: collected.bytes(\.out), stderr: collected.text(\.err),
                       seconds: Date().timeIntervalSince(start))
    }

    /// Starts `executable arguments` with both output streams in the file `output`, waits (at
    /// most 60 s) until `ready` says so about the output so far, calls `act` on the process, and
    /// waits for it to end (120 s from the start in all); one still running then is killed and
    /// fails the test with `stuck`. Returns its exit status and everything it printed.
    static func interrupted(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: String,
                            ready: (String) -> Bool, act: (Process) throws -> Void, stuck: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        FileManager.default.createFile(atPath: output, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let start = Date()
        func text() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        while process.isRunning && !ready(text()) && Date().timeIntervalSince(start) < 60 { usleep(20_000) }
        try act(process)
        while process.isRunning && Date().timeIntervalSince(start) < 120 { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); XCTFail(stuck) }
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, text())
    }

    /// Process ids running the fleet binary right now.
    static func runningFleetProcesses() -> Set<Int32> {
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: binary)) ?? binary
        var found: Set<Int32> = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry),
                  let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/exe") else { continue }
            if exe == target || exe == binary { found.insert(pid) }
        }
        return found
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        var out = Data(), err = Data()
        func append(_ key: ReferenceWritableKeyPath<Collected, Data>, _ data: Data) {
            lock.lock(); self[keyPath: key].append(data); lock.unlock()
        }
        func bytes(_ key: ReferenceWritableKeyPath<Collected, Data>) -> [UInt8] {
            lock.lock(); defer { lock.unlock() }
            return [UInt8](self[keyPath: key])
        }
        func text(_ key: ReferenceWritableKeyPath<Collected, Data>) -> String {
            lock.lock(); defer { lock.unlock() }
            return String(decoding: self[keyPath: key], as: UTF8.self)
        }
    }
}

/// Base class that fails a test which leaves fleet processes behind.
class FleetProcessTestCase: XCTestCase {
    private var before: Set<Int32> = []
    /// A fresh directory for this test's files, removed afterwards.
    let directory = NSTemporaryDirectory() + "fleet-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    override func setUp() {
        super.setUp()
        before = FleetProcess.runningFleetProcesses()
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        var leftovers = FleetProcess.runningFleetProcesses().subtracting(before)
        // mpirun reaps its ranks shortly after it exits.
        for _ in 0..<50 where !leftovers.isEmpty {
            usleep(100_000)
            leftovers = FleetProcess.runningFleetProcesses().subtracting(before)
        }
        XCTAssertEqual(leftovers, [], "fleet processes left running")
        leftovers.forEach { kill($0, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
        super.tearDown()
    }
}
