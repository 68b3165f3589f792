import Foundation
import XCTest

/// A scheduler's SIGTERM (or Ctrl-C) to `fleet train --checkpoint-dir …`: every rank saves a
/// checkpoint of the same step, the run exits 75, and `--resume` continues bitwise.
final class PreemptionTests: FleetProcessTestCase {
    static let base = ["train", "gpt-tiny", "--steps", "400", "--batch", "2", "--seq", "32", "--log-every", "1", "--checkpoint-every", "100000"]

    /// Starts `fleet arguments` (under `mpirun -n ranks` when given), waits for its fifth step
    /// line, sends SIGTERM to the process it started, and waits for it to end.
    func preempt(_ arguments: [String], mpirunRanks: Int? = nil) throws -> (status: Int32, output: String) {
        let output = directory + "/preempted-\(UInt32.random(in: 0...UInt32.max)).txt"
        func preempt(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
            try FleetProcess.interrupted(executable, arguments, environment: environment, output: output,
                                         ready: { $0.components(separatedBy: "\nstep ").count >= 6 },
                                         act: { kill($0.processIdentifier, SIGTERM) }, stuck: "the preempted run did not stop")
        }
        guard let ranks = mpirunRanks else { return try preempt(FleetProcess.binary, arguments) }
        return try preempt("/usr/bin/mpirun", ["-n", "\(ranks)", FleetProcess.binary] + arguments,
                           environment: ProcessInfo.processInfo.environment.merging(FleetProcess.mpiEnvironment) { _, new in new })
    }

    /// The step of the newest checkpoint in `checkpoints`.
    func savedStep(_ checkpoints: String) throws -> Int {
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.hasPrefix("step-") }.sorted()
        return try XCTUnwrap(names.last.flatMap { Int($0.dropFirst("step-".count)) }, "\(names)")
    }

    /// Preempts `layout`, resumes it to 10 steps past the checkpoint, and requires the weights
    /// of a straight run stopped at the same step.
    func assertResumesBitwise(_ layout: [String], mpirunRanks: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let checkpoints = directory + "/ck-\(layout.joined())"
        let stopped = try preempt(Self.base + layout + ["--checkpoint-dir", checkpoints], mpirunRanks: mpirunRanks)
        // fleet exits 75; mpirun reports its ranks' non-zero exit as its own status (1 with OpenMPI).
        if mpirunRanks == nil { XCTAssertEqual(stopped.status, 75, stopped.output, file: file, line: line) } else { XCTAssertNotEqual(stopped.status, 0, file: file, line: line) }
        XCTAssertTrue(stopped.output.contains("checkpoint saved in \(checkpoints)"), stopped.output, file: file, line: line)
        XCTAssertFalse(stopped.output.contains("flight recorder"), stopped.output, file: file, line: line)
        let step = try savedStep(checkpoints)
        XCTAssertGreaterThanOrEqual(step, 5, file: file, line: line)
        XCTAssertLessThan(step, 400, file: file, line: line)
        let verify = try FleetProcess.fleet(["checkpoint", "verify", checkpoints])
        XCTAssertEqual(verify.status, 0, verify.output, file: file, line: line)
        let run = { (arguments: [String]) in
            try mpirunRanks.map { try FleetProcess.mpirun($0, arguments) } ?? FleetProcess.fleet(arguments)
        }
        let resumed = try run(Self.base + layout + ["--checkpoint-dir", checkpoints, "--resume", "--stop-at", "\(step + 10)",
                                                    "--save", directory + "/resumed.weights"])
        XCTAssertEqual(resumed.status, 0, resumed.output, file: file, line: line)
        let straight = try run(Self.base + layout + ["--checkpoint-dir", checkpoints + "-straight", "--stop-at", "\(step + 10)",
                                                     "--save", directory + "/straight.weights"])
        XCTAssertEqual(straight.status, 0, straight.output, file: file, line: line)
        let a = try Data(contentsOf: URL(fileURLWithPath: directory + "/resumed.weights"))
        let b = try Data(contentsOf: URL(fileURLWithPath: directory + "/straight.weights"))
        XCTAssertTrue(a == b, "preempted at step \(step) and resumed: the weights differ from the straight run's", file: file, line: line)
    }

    func testOneProcessSavesOnSIGTERMAndResumesBitwise() throws { try assertResumesBitwise([]) }

    func testSelfLaunchedRanksSaveTheSameStepAndResumeBitwise() throws { try assertResumesBitwise(["--dp", "2"]) }

    /// Under --max-restarts the signal stops the run (a checkpoint, exit 75); it is not a failure to restart from.
    func testASupervisedRunSavesAndStopsInsteadOfRestarting() throws { try assertResumesBitwise(["--dp", "2", "--max-restarts", "2"]) }

    func testRanksUnderMPIRunSaveTheSameStepAndResumeBitwise() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun"), "mpirun is not installed")
        try assertResumesBitwise(["--dp", "2"], mpirunRanks: 2)
    }
}
