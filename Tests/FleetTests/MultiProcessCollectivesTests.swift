import Foundation
import XCTest

/// Real worker processes over MPI (under mpirun) and ZeroMQ (self-launched).
final class MultiProcessCollectivesTests: FleetProcessTestCase {
    func testConformanceOverZeroMQForOneToFourRanks() throws {
        for ranks in 1...4 {
            for (endpoints, shm) in ranks == 3 ? [("ipc", "on"), ("tcp", "off")] : [("ipc", "on")] {
                let outcome = try FleetProcess.fleet(["selftest", "--transport", "zmq", "--ranks", "\(ranks)",
                                                      "--endpoints", endpoints, "--timeout", "20"], environment: ["FLEET_SHM": shm])
                XCTAssertEqual(outcome.status, 0, outcome.output)
                XCTAssertEqual(outcome.stdout.components(separatedBy: "collective checks passed over").count - 1,
                               ranks, outcome.output)
            }
        }
    }

    /// Without shared-memory lanes and with `FLEET_ZMQ_SINGLE_COPY=1`, every message with bytes
    /// travels as a descriptor that the receiving process copies out of the sender's memory.
    func testConformanceOverZeroMQSingleCopyForTwoToFourRanks() throws {
        for ranks in 2...4 {
            let outcome = try FleetProcess.fleet(["selftest", "--transport", "zmq", "--ranks", "\(ranks)", "--timeout", "20"],
                                                 environment: ["FLEET_ZMQ_SINGLE_COPY": "1", "FLEET_SHM": "off"])
            XCTAssertEqual(outcome.status, 0, outcome.output)
            XCTAssertEqual(outcome.stdout.components(separatedBy: "collective checks passed over").count - 1,
                           ranks, outcome.output)
        }
        let mismatch = try FleetProcess.fleet(["selftest", "--ranks", "2", "--fault", "mismatch", "--timeout", "5"],
                                              environment: ["FLEET_ZMQ_SINGLE_COPY": "1", "FLEET_SHM": "off"])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("rank 0 expected 4000 bytes but rank 1 sent 4004 bytes"), mismatch.output)
    }

    /// Lanes of two 64-byte slots: every message spans many slots, senders wait for room,
    /// chunks arrive before their receive is posted; with plain and with streaming stores.
    /// Every 64 bytes hand over between processes: restricted to one core (taskset -c 0) a
    /// wait can last seconds while the other ranks take their turns, hence the long deadline.
    func testSharedMemoryLanesWithTinySlots() throws {
        for stores in ["plain", "stream"] {
            let environment = ["FLEET_SHM_SLOTS": "2", "FLEET_SHM_SLOT_BYTES": "64", "FLEET_SHM_STORES": stores, "FLEET_SHM_REPORT": "1"]
            let mpi = try FleetProcess.mpirun(3, ["selftest", "--timeout", "90"], environment: environment, timeout: 600)
            XCTAssertEqual(mpi.status, 0, mpi.output)
            XCTAssertEqual(mpi.stdout.components(separatedBy: "collective checks passed over mpi").count - 1, 3, mpi.output)
            let zmq = try FleetProcess.fleet(["selftest", "--transport", "zmq", "--ranks", "4", "--timeout", "90"], environment: environment, timeout: 600)
            XCTAssertEqual(zmq.status, 0, zmq.output)
            XCTAssertEqual(zmq.stdout.components(separatedBy: "collective checks passed over zmq").count - 1, 4, zmq.output)
            for (outcome, ranks) in [(mpi, 3), (zmq, 4)] {
                let used = outcome.stderr.split(separator: "\n").filter { $0.contains("shared-memory slots sent") }
                XCTAssertEqual(used.count, ranks, outcome.output)
                let key = stores == "plain" ? "plain " : "streamed "
                func count(_ key: String, _ line: Substring) -> Int {
                    line.components(separatedBy: key).last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
                }
                XCTAssertTrue(used.allSatisfy { count(key, $0) > 1000 }, "\(stores): " + outcome.output)
                // Ring relays went both ways: straight from slot to slot, and through the buffer
                // when the lane onward was full.
                XCTAssertGreaterThan(used.map { count("relayed ", $0) }.reduce(0, +), 1000, outcome.output)
                XCTAssertGreaterThan(used.map { line in Int(line.split(separator: ",").last!.split(separator: " ").first!)! }.reduce(0, +), 100, outcome.output)
            }
        }
    }

    func testConformanceOverMPIForOneToFourRanks() throws {
        for ranks in 1...4 {
            // Shared-memory lanes (the default on one host) and MPI's own path.
            for shm in ranks == 3 ? ["on", "off"] : ["on"] {
                let outcome = try FleetProcess.mpirun(ranks, ["selftest", "--timeout", "20"], environment: ["FLEET_SHM": shm])
                XCTAssertEqual(outcome.status, 0, outcome.output)
                XCTAssertEqual(outcome.stdout.components(separatedBy: "collective checks passed over mpi").count - 1,
                               ranks, "FLEET_SHM=\(shm): " + outcome.output)
            }
        }
    }

    func testSilentRankIsNamedWithinTheDeadline() throws {
        let zmq = try FleetProcess.fleet(["selftest", "--ranks", "4", "--fault", "silent", "--faulty-rank", "1", "--timeout", "2"])
        XCTAssertNotEqual(zmq.status, 0)
        XCTAssertTrue(zmq.stderr.contains("rank 1 did not answer within 2.0 s"), zmq.output)
        XCTAssertLessThan(zmq.seconds, 15)

        let mpi = try FleetProcess.mpirun(3, ["selftest", "--fault", "silent", "--faulty-rank", "2", "--timeout", "2"])
        XCTAssertNotEqual(mpi.status, 0)
        XCTAssertTrue(mpi.stderr.contains("rank 2 did not answer within 2.0 s"), mpi.output)
        XCTAssertLessThan(mpi.seconds, 20)
    }

    func testKilledPeerStopsTheRunWithoutHanging() throws {
        let zmq = try FleetProcess.fleet(["selftest", "--ranks", "4", "--fault", "crash", "--faulty-rank", "2", "--timeout", "30"])
        XCTAssertEqual(zmq.status, 3, "a failure while running")
        XCTAssertTrue(zmq.stderr.contains("rank 2 was killed by signal 9"), zmq.output)
        XCTAssertLessThan(zmq.seconds, 15)

        let mpi = try FleetProcess.mpirun(4, ["selftest", "--fault", "crash", "--faulty-rank", "2", "--timeout", "30"])
        XCTAssertNotEqual(mpi.status, 0)
        XCTAssertLessThan(mpi.seconds, 20)
    }

    /// Without fleet's launcher (ranks started by hand against a coordinator address),
    /// a rank still learns that its peer died instead of waiting out the deadline.
    func testZeroMQRankDetectsDeadPeerWithoutLauncher() throws {
        try deadPeerWithoutLauncher(sharedMemory: "on", singleCopy: "off")
        try deadPeerWithoutLauncher(sharedMemory: "off", singleCopy: "off")
        try deadPeerWithoutLauncher(sharedMemory: "off", singleCopy: "1")
    }

    private func deadPeerWithoutLauncher(sharedMemory: String, singleCopy: String) throws {
        let coordinator = "ipc:///tmp/fleet-test-\(getpid())-coordinator-\(sharedMemory)-\(singleCopy)"
        let outcomes = ResultBox()
        let group = DispatchGroup()
        for rank in 0..<2 {
            group.enter()
            DispatchQueue.global().async {
                let env = ["FLEET_RANK": "\(rank)", "FLEET_WORLD_SIZE": "2", "FLEET_ZMQ_COORDINATOR": coordinator,
                           "FLEET_ZMQ_SINGLE_COPY": singleCopy, "FLEET_SHM": sharedMemory]
                let outcome = try? FleetProcess.fleet(["selftest", "--fault", "crash", "--faulty-rank", "1", "--timeout", "60"],
                                                      environment: env, timeout: 40)
                outcomes.set(rank, outcome)
                group.leave()
            }
        }
        group.wait()
        let survivor = try XCTUnwrap(outcomes.get(0))
        XCTAssertEqual(survivor.status, 3)
        XCTAssertTrue(survivor.stderr.contains("rank 1 exited during"), "shm \(sharedMemory), single copy \(singleCopy): " + survivor.output)
        XCTAssertLessThan(survivor.seconds, 20, "the survivor should not wait out its 60 s deadline (shm \(sharedMemory), single copy \(singleCopy))")
    }

    func testMismatchedSizesAreNamedOnBothSides() throws {
        let zmq = try FleetProcess.fleet(["selftest", "--ranks", "2", "--fault", "mismatch", "--timeout", "5"])
        XCTAssertNotEqual(zmq.status, 0)
        XCTAssertTrue(zmq.stderr.contains("rank 0 expected 4000 bytes but rank 1 sent 4004 bytes"), zmq.output)
        // Through shared-memory lanes the receiver sees the sender's size; through MPI itself only that it was larger.
        let mpi = try FleetProcess.mpirun(2, ["selftest", "--fault", "mismatch", "--timeout", "5"])
        XCTAssertNotEqual(mpi.status, 0)
        XCTAssertTrue(mpi.stderr.contains("rank 0 expected 4000 bytes but rank 1 sent 4004 bytes"), mpi.output)
        let mpiOnly = try FleetProcess.mpirun(2, ["selftest", "--fault", "mismatch", "--timeout", "5"], environment: ["FLEET_SHM": "off"])
        XCTAssertNotEqual(mpiOnly.status, 0)
        XCTAssertTrue(mpiOnly.stderr.contains("rank 0 expected 4000 bytes but rank 1 sent a larger message"), mpiOnly.output)
    }

    func testBenchCollectivesPrintsVerifiedJSONForEveryAlgorithm() throws {
        let mpi = try FleetProcess.mpirun(2, ["bench", "collectives", "--op", "allreduce", "--algo", "ring,hd,tree,naive,native",
                                              "--sizes", "4KiB:16KiB", "--iters", "2", "--json"])
        XCTAssertEqual(mpi.status, 0, mpi.output)
        let rows = try mpi.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(rows.count, 15)
        for row in rows {
            for key in ["op", "algo", "transport", "ranks", "bytes", "time_s", "algbw_GBps", "busbw_GBps", "verified", "max_abs_error"] {
                XCTAssertNotNil(row[key], "missing \(key) in \(row)")
            }
            XCTAssertEqual(row["verified"] as? Bool, true)
            XCTAssertEqual(row["transport"] as? String, "mpi")
            // A few-µs all-reduce repeats until its rounds fill --seconds-per-size (0.2 s), not just --iters.
            XCTAssertGreaterThan(row["repetitions"] as? Int ?? 0, 2, "\(row)")
        }
        let exact = try FleetProcess.mpirun(2, ["bench", "collectives", "--algo", "ring", "--sizes", "4KiB", "--iters", "3",
                                                "--seconds-per-size", "0", "--json"])
        XCTAssertEqual(exact.status, 0, exact.output)
        XCTAssertTrue(exact.stdout.contains("\"repetitions\":3"), exact.output)
        for op in ["allgather", "reducescatter", "broadcast", "alltoall", "reduce"] {
            let zmq = try FleetProcess.fleet(["bench", "collectives", "--transport", "zmq", "--ranks", "3", "--op", op,
                                              "--sizes", "12KiB", "--iters", "1"])
            XCTAssertEqual(zmq.status, 0, zmq.output)
            XCTAssertTrue(zmq.stdout.contains(" yes "), zmq.output)
        }
    }

    /// Under mpirun, `--transport zmq` runs fleet's algorithms over ZeroMQ and native over MPI
    /// in one run, and leaves no socket files behind.
    func testBenchRunsZeroMQBesideMPIUnderMPIRun() throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("fleet-mpi-") }
        let outcome = try FleetProcess.mpirun(2, ["bench", "collectives", "--transport", "zmq", "--algo", "native,ring",
                                                  "--sizes", "4KiB,300KiB", "--iters", "2", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let rows = try outcome.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(rows.count, 4, outcome.output)
        for row in rows {
            XCTAssertEqual(row["verified"] as? Bool, true, "\(row)")
            XCTAssertEqual(row["transport"] as? String, row["algo"] as? String == "native" ? "mpi" : "zmq", "\(row)")
            XCTAssertNotNil(row["vs_native"] as? Double, "\(row)")
        }
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("fleet-mpi-") }
        XCTAssertEqual(after.subtracting(before), [], "ipc socket files left behind")
        let table = try FleetProcess.mpirun(2, ["bench", "collectives", "--transport", "zmq", "--algo", "native,ring",
                                                "--sizes", "64KiB", "--iters", "1"])
        XCTAssertTrue(table.stdout.contains("over zmq (native: MPI_Allreduce over mpi), 2 ranks"), table.output)
        XCTAssertTrue(table.stdout.contains("talk through shared memory"), table.output)
    }

    func testBadArgumentsGiveClearErrors() throws {
        let native = try FleetProcess.fleet(["bench", "collectives", "--transport", "zmq", "--ranks", "2", "--algo", "native"])
        XCTAssertNotEqual(native.status, 0)
        XCTAssertTrue(native.stderr.contains("native is MPI_Allreduce"), native.output)
        let size = try FleetProcess.fleet(["bench", "collectives", "--sizes", "12QB"])
        XCTAssertNotEqual(size.status, 0)
        XCTAssertTrue(size.stderr.contains("--sizes"), size.output)
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: FleetProcess.Outcome] = [:]
    func set(_ key: Int, _ value: FleetProcess.Outcome?) { lock.lock(); values[key] = value; lock.unlock() }
    func get(_ key: Int) -> FleetProcess.Outcome? { lock.lock(); defer { lock.unlock() }; return values[key] }
}
