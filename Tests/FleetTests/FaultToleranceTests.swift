import Foundation
import XCTest

/// Every fault kind on a real 4-process run (dp2·pp2, deterministic): it is detected with
/// the right rank or tensor named, the supervised run restarts from the newest valid
/// checkpoint, and the final weights are bitwise those of the fault-free run.
final class FaultToleranceTests: FleetProcessTestCase {
    static let base = ["train", "gpt-tiny", "--deterministic", "--steps", "20", "--seq", "64", "--dp", "2", "--pp", "2",
                       "--eval-batches", "1", "--log-every", "100"]
    private func reference() throws -> String {
        let path = directory + "/reference"
        let outcome = try FleetProcess.fleet(Self.base + ["--run-dir", path])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        return path
    }

    /// The run's final weights equal the reference's, and its checkpoints all verify.
    private func assertRecovered(_ run: String, reference: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let diff = try FleetProcess.fleet(["diff", reference, run + "/run"])
        XCTAssertEqual(diff.status, 0, "\(name): \(diff.output)", file: file, line: line)
        XCTAssertTrue(diff.stdout.contains("final weights: bitwise identical"), "\(name): \(diff.output)", file: file, line: line)
        let verify = try FleetProcess.fleet(["checkpoint", "verify", run + "/ck"])
        XCTAssertEqual(verify.status, 0, "\(name): no valid checkpoint may be damaged: \(verify.output)", file: file, line: line)
    }

    func testEveryFaultKindIsDetectedAndRecoveredBitwise() throws {
        let reference = try reference()
        let cases: [(spec: String, detected: String, cause: String)] = [
            ("crash:rank=1,step=12", "rank 1 was killed by signal 9", "process_died"),
            ("crash:rank=2,step=12,phase=backward,signal=exit", "rank 2 exited with code 3", "process_exited"),
            ("hang:rank=3,step=12", "rank 3 did not answer within 3.0 s", "deadline"),
            ("nan:rank=1,step=12", "the first non-finite value on rank 1 is in ", "non_finite_gradient"),
            ("bitflip:rank=3,step=12", "the gradient is not finite (global norm inf)", "non_finite_gradient"),
            // Caught by the replica comparison before it reaches a gradient; two replicas have no majority, so both are suspects.
            ("bitflip:rank=0,step=12,target=parameter", "data-parallel replicas hold different parameters (suspect world ranks 0, 1", "replica_divergence"),
            ("bitflip:rank=1,step=12,target=parameter,bit=3", "data-parallel replicas hold different parameters (suspect world ranks 0, 1", "replica_divergence"),
            ("drop:rank=2,step=12", "rank 2 did not answer within 3.0 s", "deadline"),
            ("corrupt:rank=0,step=12", "message from rank 0 (tag", "message_checksum"),
            ("duplicate:rank=0,step=12", "arrived out of order: sequence number", "message_order"),
            ("checkpoint:rank=1,step=10,mode=full", "no space left on device (injected", "checkpoint_write"),
            ("checkpoint:rank=0,step=10,mode=torn", "step-00000010 is incomplete", "process_died"),
        ]
        for (index, (spec, detected, cause)) in cases.enumerated() {
            let run = directory + "/case\(index)"
            let outcome = try FleetProcess.fleet(Self.base + ["--checkpoint-dir", run + "/ck", "--checkpoint-every", "5", "--max-restarts", "2",
                                                              "--timeout", "3", "--checksums", "--check-replicas", "1",
                                                              "--inject", spec, "--run-dir", run + "/run"])
            XCTAssertEqual(outcome.status, 0, "\(spec): \(outcome.output)")
            XCTAssertTrue(outcome.output.contains(detected), "\(spec) must be detected as '\(detected)': \(outcome.output)")
            XCTAssertTrue(outcome.stderr.contains("fault report: 1 failure(s), recovered"), "\(spec): \(outcome.output)")
            // The supervisor's decision, as it recorded it on the run's event channel.
            let events = try events(run + "/run/events.jsonl")
            let failed = events.filter { $0["event"] as? String == "attempt_failed" }
            XCTAssertEqual(failed.map { $0["cause"] as? String }, [cause], "\(spec): \(failed)")
            XCTAssertEqual(events.last?["event"] as? String, "finished", spec)
            try assertRecovered(run, reference: reference, spec)
        }
    }

    /// Interleaved 1F1B recovers like any layout: a rank killed mid-step under dp2·pp2·v2 is
    /// named, the supervisor resumes from the checkpoint, and the weights are bitwise those of
    /// the fault-free dp2·pp2 run (deterministic mode makes every layout the same run).
    func testAnInterleavedRunRecoversBitwise() throws {
        let reference = try reference()
        let run = directory + "/interleaved"
        let outcome = try FleetProcess.fleet(Self.base + ["--schedule", "interleaved", "--virtual-stages", "2", "--microbatches", "2",
                                                          "--checkpoint-dir", run + "/ck", "--checkpoint-every", "5", "--max-restarts", "2",
                                                          "--timeout", "3", "--inject", "crash:rank=3,step=12,phase=backward", "--run-dir", run + "/run"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.output.contains("rank 3 was killed by signal 9"), outcome.output)
        XCTAssertTrue(outcome.stderr.contains("fault report: 1 failure(s), recovered"), outcome.output)
        try assertRecovered(run, reference: reference, "dp2·pp2·v2")
    }

    /// Context parallelism: a rank killed, or silent, in the middle of the ring's K/V passes is
    /// named, and the run resumes to the fault-free weights.
    func testAContextParallelRunRecoversBitwise() throws {
        let reference = try reference()
        for (spec, detected) in [("crash:rank=1,step=12,phase=backward", "rank 1 was killed by signal 9"), ("hang:rank=2,step=12", "rank 2 did not answer within 3.0 s")] {
            let run = directory + "/context-\(spec.prefix(5))"
            let outcome = try FleetProcess.fleet(Self.base + ["--cp", "2", "--cp-balance", "--checkpoint-dir", run + "/ck", "--checkpoint-every", "5",
                                                              "--max-restarts", "2", "--timeout", "3", "--inject", spec, "--run-dir", run + "/run"])
            XCTAssertEqual(outcome.status, 0, outcome.output)
            XCTAssertTrue(outcome.output.contains(detected), "\(spec): \(outcome.output)")
            try assertRecovered(run, reference: reference, "dp2·pp2·cp2 \(spec)")
        }
    }

    /// A run's event channel, one JSON object per line.
    private func events(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testStragglersAreNamedAndDelaysChangeNothing() throws {
        let reference = try reference()
        let slow = try FleetProcess.fleet(Self.base + ["--inject", "slow:rank=2,factor=4,steps=2-20", "--run-dir", directory + "/slow/run"])
        XCTAssertEqual(slow.status, 0, slow.output)
        XCTAssertTrue(slow.stdout.contains("straggler: rank 2 computes"), slow.output)
        XCTAssertFalse(slow.stdout.contains("straggler: rank 0"), slow.output)
        let delayed = try FleetProcess.fleet(Self.base + ["--inject", "delay:rank=1,ms=20,steps=5-8", "--run-dir", directory + "/delay/run"])
        XCTAssertEqual(delayed.status, 0, delayed.output)
        let diff = try FleetProcess.fleet(["diff", reference, directory + "/delay/run"])
        XCTAssertEqual(diff.status, 0, diff.output)
    }

    func testWithoutRestartsAFaultIsAClearErrorAndSilentCorruptionIsCaughtOnlyWhenChecked() throws {
        let reference = try reference()
        let crash = try FleetProcess.fleet(Self.base + ["--inject", "crash:rank=1,step=5"])
        XCTAssertNotEqual(crash.status, 0)
        XCTAssertTrue(crash.stderr.contains("rank 1 was killed by signal 9"), crash.output)
        // A low-bit flip in one replica's parameters goes unnoticed…
        let silent = directory + "/silent"
        let unnoticed = try FleetProcess.fleet(Self.base + ["--inject", "bitflip:rank=1,step=8,target=parameter,bit=2", "--run-dir", silent + "/run"])
        XCTAssertEqual(unnoticed.status, 0, unnoticed.output)
        XCTAssertEqual(try FleetProcess.fleet(["diff", reference, silent + "/run"]).status, 1, "the oracle sees what training did not")
        // …unless the replicas are compared.
        let checked = try FleetProcess.fleet(Self.base + ["--check-replicas", "1", "--inject", "bitflip:rank=1,step=8,target=parameter,bit=2"])
        XCTAssertEqual(checked.status, 3, "a failure while running")
        XCTAssertTrue(checked.stderr.contains("step 8: data-parallel replicas hold different parameters"), checked.output)
        let bad = try FleetProcess.fleet(Self.base + ["--inject", "crash:rank=7,step=5"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("rank 7 does not exist in a world of 4 ranks"), bad.output)
        let needsDir = try FleetProcess.fleet(Self.base + ["--max-restarts", "2"])
        XCTAssertTrue(needsDir.stderr.contains("--max-restarts needs --checkpoint-dir"), needsDir.output)
    }

    func testSuperviseRestartsAnMPIJobAndPlansComeFromYAML() throws {
        let reference = try reference()
        let plan = directory + "/plan.yaml"
        try "- {kind: crash, rank: 3, step: 13}\n".write(toFile: plan, atomically: true, encoding: .utf8)
        let run = directory + "/mpi"
        let outcome = try FleetProcess.run(FleetProcess.binary, ["supervise", "--max-restarts", "2", "--", "/usr/bin/mpirun", "-n", "4", FleetProcess.binary]
                                            + Self.base + ["--checkpoint-dir", run + "/ck", "--checkpoint-every", "5", "--faults", plan, "--run-dir", run + "/run"],
                                           environment: FleetProcess.mpiEnvironment, timeout: 180)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.stderr.contains("fault report: 1 failure(s), recovered"), outcome.output)
        XCTAssertTrue(outcome.output.contains("resumed from \(run)/ck/step-00000010"), outcome.output)
        // The ranks under mpirun report their steps on the supervisor's channel: the steps after
        // the checkpoint at 10 that the crash at 13 threw away are counted.
        XCTAssertNotNil(outcome.stderr.range(of: "resumed from step 10, [1-3] step\\(s\\) recomputed", options: .regularExpression), outcome.output)
        try assertRecovered(run, reference: reference, "supervised MPI job")
    }

    /// 32 runs: every fault kind, four layouts, self-launched ZeroMQ and mpirun under fleet
    /// supervise, one fault-free reference; each must be detected, recover bitwise and leave
    /// every complete checkpoint intact (the 100-run campaign is in docs/benchmarks.md).
    func testChaosCampaignRecoversEveryRunBitwise() throws {
        let outcome = try FleetProcess.fleet(["chaos", "gpt-tiny", "--layouts", "dp2,tp2,pp2,dp2pp2", "--transports", "zmq,mpi", "--runs", "32",
                                              "--seed", "3", "--steps", "10", "--json", "--dir", directory + "/chaos"], timeout: 900)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let objects = outcome.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let runs = objects.filter { $0["summary"] == nil }
        XCTAssertEqual(runs.count, 32, outcome.output)
        XCTAssertEqual(Set(runs.compactMap { $0["transport"] as? String }), ["zmq", "mpi"])
        XCTAssertEqual(Set(runs.compactMap { $0["layout"] as? String }).count, 4)
        XCTAssertGreaterThanOrEqual(Set(runs.compactMap { $0["kind"] as? String }).count, 8, "the draws cover the fault kinds")
        for run in runs { XCTAssertEqual(run["passed"] as? Bool, true, "\(run)") }
        let summary = try XCTUnwrap(objects.last)
        XCTAssertEqual(summary["passed"] as? Int, 32, outcome.output)
        XCTAssertEqual(summary["damaged_checkpoints"] as? Int, 0, outcome.output)
    }
}
