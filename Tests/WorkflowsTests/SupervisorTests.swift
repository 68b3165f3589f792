import Collectives
import Foundation
import Training
import Workflows
import XCTest

/// The supervisor's accounting from its event channel, with attempts acted out in-process.
final class SupervisorTests: TemporaryDirectoryTestCase {
    /// What a rank of `attempt` writes for steps `steps`.
    func steps(_ steps: ClosedRange<Int>, attempt: Int, rank: Int = 0, on channel: EventChannel) {
        for step in steps {
            var event = RunEvent(.step, attempt: attempt, rank: rank)
            event.step = step
            event.stepSeconds = 0.01 * Double(step)
            channel.emit(event)
        }
    }

    func testARestartIsAccountedFromTheEventsItsRanksWrote() throws {
        let channel = EventChannel(path: directory + "/events.jsonl")
        var supervisor = Supervisor(maxRestarts: 2, channel: channel)
        var restarts: [String] = []
        supervisor.onRestart = { restarts.append($0) }
        supervisor.steps = 12
        var seen: [[String: String]] = []
        let report = try supervisor.run { attempt, environment in
            seen.append(environment)
            if attempt == 0 {
                steps(1...7, attempt: 0, on: channel)
                steps(1...7, attempt: 0, rank: 1, on: channel)
                var failure = RunEvent(.failure, attempt: 0, rank: 1)
                failure.cause = FailureCause(TransportError.peerTimedOut(rank: 0, operation: "all-reduce", after: .seconds(3)))
                channel.emit(failure)
                throw LocalLauncher.LaunchError.workerFailed(first: .init(rank: 1, status: 1, signaled: false), all: [])
            }
            steps(6...12, attempt: attempt, on: channel)
        }
        XCTAssertTrue(report.recovered)
        XCTAssertEqual(report.failures.count, 1)
        XCTAssertEqual(report.failures[0].cause, FailureCause.deadline, "the failing rank's own report names the cause")
        XCTAssertEqual(report.failures[0].step, 7)
        XCTAssertEqual(report.failures[0].resumeStep, 0, "no checkpoint directory: from the start")
        XCTAssertEqual(report.recomputedSteps, 7)
        XCTAssertEqual(restarts.count, 1)
        XCTAssertEqual(seen.map { $0[Supervisor.attemptVariable] }, ["0", "1"])
        XCTAssertEqual(seen[0][EventChannel.variable], channel.path)
        let finished = try XCTUnwrap(channel.read().last)
        XCTAssertEqual(finished.event, .finished)
        XCTAssertEqual(finished.recomputedSteps, 7)
        XCTAssertEqual(finished.recovered, true)
        XCTAssertTrue(report.lines[0] == "fault report: 1 failure(s), recovered", report.lines.joined(separator: "\n"))
    }

    func testAKilledWorkerIsTheCauseEvenWhenItsPeersReportTheirOwnErrors() throws {
        let channel = EventChannel(path: directory + "/events.jsonl")
        let report = try Supervisor(maxRestarts: 0, channel: channel).run { _, _ in
            var peer = RunEvent(.failure, attempt: 0, rank: 0)
            peer.cause = .peerDied
            channel.emit(peer)
            throw LocalLauncher.LaunchError.workerFailed(first: .init(rank: 1, status: 9, signaled: true), all: [])
        }
        XCTAssertFalse(report.recovered)
        XCTAssertEqual(report.failures.map { $0.cause }, [FailureCause.processDied])
        XCTAssertTrue(report.lines[0].hasSuffix("not recovered"))
    }

    func testAnInterruptIsNotAFailure() {
        let channel = EventChannel(path: directory + "/events.jsonl")
        XCTAssertThrowsError(try Supervisor(maxRestarts: 3, channel: channel).run { _, _ in
            throw LocalLauncher.LaunchError.interrupted(signal: SIGTERM, exits: [])
        }) { error in
            guard case LocalLauncher.LaunchError.interrupted = error else { return XCTFail("\(error)") }
        }
        XCTAssertTrue(channel.read().isEmpty)
    }

    func testCausesComeFromTypedErrors() {
        XCTAssertEqual(FailureCause(TrainingFault.nonFinite(step: 3, norm: .infinity, tensor: nil, rank: 0)), .nonFiniteGradient)
        XCTAssertEqual(FailureCause(TrainingFault.replicasDiverged(step: 3, ranks: [0, 1])), .replicaDivergence)
        XCTAssertEqual(FailureCause(CheckpointError.writeFailed(path: "x", reason: "full")), .checkpointWrite)
        XCTAssertEqual(FailureCause(TransportError.corruptMessage(from: 1, tag: 2, bytes: 4, expected: 1, found: 2)), .messageChecksum)
        XCTAssertEqual(FailureCause(TransportError.messageOutOfOrder(from: 1, tag: 2, expected: 1, found: 2)), .messageOrder)
        XCTAssertEqual(FailureCause(FleetError("something")), .other)
    }

    func testATornLineIsSkippedAndEventsRoundTrip() throws {
        let channel = EventChannel(path: directory + "/events.jsonl")
        var event = RunEvent(.attemptFailed, attempt: 2, rank: 3)
        event.cause = .messageChecksum
        event.sinceLastStepSeconds = 0.25
        channel.emit(event)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: channel.path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"event\":\"step\",\"ti".utf8))
        try handle.close()
        XCTAssertEqual(channel.read(), [event])
        let line = try XCTUnwrap(String(contentsOfFile: channel.path, encoding: .utf8).split(separator: "\n").first)
        XCTAssertTrue(line.contains("\"cause\":\"message_checksum\"") && line.contains("\"since_last_step_s\":0.25"), String(line))
    }

    func testLayoutNamesReadAndPrintBack() throws {
        for name in ["dp1", "dp2", "tp2", "dp2pp2", "dp2tp2pp2"] {
            XCTAssertEqual(LayoutName.name(try LayoutName.parse(name)), name)
        }
        XCTAssertThrowsError(try LayoutName.parse("xx2"))
        XCTAssertThrowsError(try LayoutName.parse(""))
    }
}
