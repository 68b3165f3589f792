import Foundation
import XCTest

/// Checkpoints through the real binary: bit-exact resume, resume under other layouts (over
/// MPI and ZeroMQ), round trips, interrupted saves, corruption, incompatible requests and
/// asynchronous saves.
final class CheckpointTests: FleetProcessTestCase {
    static let base = ["train", "gpt-tiny", "--steps", "20", "--seq", "64", "--json", "--eval-batches", "1"]
    /// Step number → the step's JSON line without its timing fields.
    private func steps(_ outcome: FleetProcess.Outcome, file: StaticString = #filePath, line: UInt = #line) -> [Int: String] {
        XCTAssertEqual(outcome.status, 0, outcome.output, file: file, line: line)
        var result: [Int: String] = [:]
        for text in outcome.stdout.split(separator: "\n") where text.hasPrefix("{\"step\"") {
            let fields = String(text[..<(text.range(of: ",\"tokens_per_s\"")?.lowerBound ?? text.endIndex)])
            let number = Int(fields.dropFirst(8).prefix { $0.isNumber })!
            result[number] = fields
        }
        return result
    }

    private func losses(_ steps: [Int: String]) -> [Int: Double] {
        steps.mapValues { line in
            let object = try! JSONSerialization.jsonObject(with: Data((line + "}").utf8)) as! [String: Any]
            return object["loss"] as! Double
        }
    }

    private func parameters(_ path: String) throws -> Data {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        return data.subdata(in: (12 + headerLength)..<data.count)
    }

    private func run(_ arguments: [String], ranks: Int = 1, mpi: Bool = false, environment: [String: String] = [:]) throws -> FleetProcess.Outcome {
        if mpi { return try FleetProcess.mpirun(ranks, arguments) }
        return try FleetProcess.fleet(arguments + (ranks > 1 ? ["--transport", "zmq"] : []), environment: environment)
    }

    /// Each tensor's parameter and moment checksums, from fleet checkpoint inspect --json.
    private func tensors(_ path: String) throws -> [String] {
        let outcome = try FleetProcess.fleet(["checkpoint", "inspect", "--json", path])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        return try XCTUnwrap(object["tensors"] as? [[String: Any]]).map { t in
            ["name", "crc32c", "first_moment_crc32c", "second_moment_crc32c"].map { "\(t[$0] ?? "-")" }.joined(separator: " ")
        }
    }

    func testSameLayoutResumeIsBitExact() throws {
        for (layout, ranks, mpi, async) in [([String](), 1, false, false), (["--dp", "2", "--pp", "2"], 4, false, false), (["--tp", "2", "--pp", "2"], 4, true, true)] {
            let name = (layout.isEmpty ? "one process" : layout.joined(separator: " ")) + (async ? " with asynchronous saves" : "")
            let tag = layout.joined()
            let straight = steps(try run(Self.base + layout + ["--save", directory + "/straight\(tag).w"], ranks: ranks, mpi: mpi))
            let checkpoints = directory + "/same\(tag)"
            let first = steps(try run(Self.base + layout + ["--checkpoint-dir", checkpoints, "--checkpoint-every", "5", "--stop-at", "10"]
                + (async ? ["--async-checkpoint"] : []), ranks: ranks, mpi: mpi))
            XCTAssertEqual(first.keys.sorted(), Array(1...10), name)
            let resumed = try run(Self.base + layout + ["--checkpoint-dir", checkpoints, "--resume", "--save", directory + "/resumed\(tag).w"],
                                  ranks: ranks, mpi: mpi)
            let second = steps(resumed)
            XCTAssertEqual(second.keys.sorted(), Array(11...20), "\(name): the resumed run prints the uninterrupted run's step numbers")
            for step in 11...20 { XCTAssertEqual(second[step], straight[step], "\(name): step \(step)") }
            XCTAssertEqual(try parameters(directory + "/resumed\(tag).w"), try parameters(directory + "/straight\(tag).w"), "\(name): final weights")
        }
    }

    func testResumingUnderAnotherLayoutContinuesLikeTheUninterruptedRun() throws {
        let exact = Self.base + ["--deterministic"]
        let straight = steps(try run(exact))
        // Saved by dp2·pp2 over MPI; resumed by tp2·dp2, dp4 and one process, over both transports.
        let saved = directory + "/dp2pp2"
        _ = steps(try run(exact + ["--dp", "2", "--pp", "2", "--checkpoint-dir", saved, "--stop-at", "10"], ranks: 4, mpi: true))
        for (layout, ranks, mpi) in [(["--tp", "2", "--dp", "2"], 4, false), (["--dp", "4"], 4, true), ([String](), 1, false)] {
            let resumed = steps(try run(exact + layout + ["--resume-from", saved], ranks: ranks, mpi: mpi))
            XCTAssertEqual(resumed.keys.sorted(), Array(11...20))
            for step in 11...20 { XCTAssertEqual(resumed[step], straight[step], "dp2·pp2 → \(layout): step \(step)") }
        }
        // Saved under ZeRO-3 (each block by its owner), resumed by one process, and back.
        let zero3 = directory + "/zero3"
        _ = steps(try run(exact + ["--dp", "2", "--pp", "2", "--zero", "3", "--checkpoint-dir", zero3, "--stop-at", "10"], ranks: 4, mpi: true))
        let fromZeRO = steps(try run(exact + ["--resume-from", zero3]))
        for step in 11...20 { XCTAssertEqual(fromZeRO[step], straight[step], "dp2·pp2 ZeRO-3 → one process: step \(step)") }
        // And the reverse: one process → dp2·pp2.
        let single = directory + "/single"
        _ = steps(try run(exact + ["--checkpoint-dir", single, "--stop-at", "10"]))
        let reverse = steps(try run(exact + ["--dp", "2", "--pp", "2", "--resume-from", single], ranks: 4))
        for step in 11...20 { XCTAssertEqual(reverse[step], straight[step], "one process → dp2·pp2: step \(step)") }
        let intoZeRO = steps(try run(exact + ["--dp", "4", "--zero", "3", "--resume-from", single], ranks: 4))
        for step in 11...20 { XCTAssertEqual(intoZeRO[step], straight[step], "one process → dp4 ZeRO-3: step \(step)") }
        // Interleaved: a stage's chunks are not contiguous (pp2·v2: layers 0, 2 | 1, 3), yet the
        // checkpoint is the model's — saved by pp2·v2, resumed by dp2; one process → dp2·pp2·v2.
        let interleaved = ["--schedule", "interleaved", "--virtual-stages", "2"]
        let chunked = directory + "/pp2v2"
        _ = steps(try run(exact + ["--pp", "2", "--microbatches", "4", "--checkpoint-dir", chunked, "--stop-at", "10"] + interleaved, ranks: 2))
        let fromChunks = steps(try run(exact + ["--dp", "2", "--resume-from", chunked], ranks: 2, mpi: true))
        for step in 11...20 { XCTAssertEqual(fromChunks[step], straight[step], "pp2·v2 → dp2: step \(step)") }
        let intoChunks = steps(try run(exact + ["--dp", "2", "--pp", "2", "--microbatches", "2", "--resume-from", single] + interleaved, ranks: 4, mpi: true))
        for step in 11...20 { XCTAssertEqual(intoChunks[step], straight[step], "one process → dp2·pp2·v2: step \(step)") }
        // Sequence parallel: saved by tp2·pp2·sp over ZeroMQ, resumed by one process; one process → dp2·tp2·sp over MPI.
        let sequence = directory + "/tp2pp2sp"
        _ = steps(try run(exact + ["--tp", "2", "--pp", "2", "--sequence-parallel", "--checkpoint-dir", sequence, "--stop-at", "10"], ranks: 4))
        let fromSequence = steps(try run(exact + ["--resume-from", sequence]))
        for step in 11...20 { XCTAssertEqual(fromSequence[step], straight[step], "tp2·pp2·sp → one process: step \(step)") }
        let intoSequence = steps(try run(exact + ["--dp", "2", "--tp", "2", "--sequence-parallel", "--resume-from", single], ranks: 4, mpi: true))
        for step in 11...20 { XCTAssertEqual(intoSequence[step], straight[step], "one process → dp2·tp2·sp: step \(step)") }
        // Without --deterministic the layouts' summation orders differ: the tolerance of parallel training.
        let loose = steps(try run(Self.base))
        let looseSaved = directory + "/loose"
        _ = steps(try run(Self.base + ["--dp", "2", "--pp", "2", "--checkpoint-dir", looseSaved, "--stop-at", "10"], ranks: 4))
        let continued = losses(steps(try run(Self.base + ["--resume-from", looseSaved])))
        let reference = losses(loose)
        for step in 11...20 {
            XCTAssertLessThanOrEqual(abs(continued[step]! - reference[step]!) / reference[step]!, 1e-5, "step \(step)")
        }
    }

    /// gpt-tiny-moe's experts are parameters like any other: saved by dp2·ep2·pp2 over ZeroMQ (each
    /// expert by its holder in the first expert-parallel group), resumed by one process and by ep4
    /// bitwise; and the model generates from its weights.
    func testMixtureOfExpertsResumesAcrossLayoutsAndGenerates() throws {
        let exact = ["train", "gpt-tiny-moe", "--steps", "20", "--seq", "64", "--json", "--eval-batches", "1", "--deterministic"]
        let straight = steps(try run(exact + ["--save", directory + "/moe.w"]))
        let saved = directory + "/moe-dp2ep2pp2"
        _ = steps(try run(exact + ["--dp", "2", "--ep", "2", "--pp", "2", "--checkpoint-dir", saved, "--stop-at", "10"], ranks: 4))
        let resumed = steps(try run(exact + ["--resume-from", saved]))
        for step in 11...20 { XCTAssertEqual(resumed[step], straight[step], "gpt-tiny-moe dp2·ep2·pp2 → one process: step \(step)") }
        let spread = steps(try run(exact + ["--dp", "4", "--ep", "4", "--resume-from", saved], ranks: 4))
        for step in 11...20 { XCTAssertEqual(spread[step], straight[step], "gpt-tiny-moe dp2·ep2·pp2 → dp4·ep4: step \(step)") }
        let generated = try FleetProcess.fleet(["generate", "--weights", directory + "/moe.w", "--tokens", "40", "--prompt", "ROMEO:"])
        XCTAssertEqual(generated.status, 0, generated.output)
        XCTAssertTrue(generated.stdout.hasPrefix("ROMEO:") && generated.stdout.count > 30, generated.output)
    }

    /// Context parallelism holds whole parameters on every rank: a dp2·cp2 checkpoint (ZeroMQ)
    /// resumes bitwise in one process and in dp4·cp4 with balanced chunks.
    func testContextParallelResumesAcrossLayouts() throws {
        let exact = ["train", "gpt-tiny", "--steps", "20", "--json", "--eval-batches", "1", "--deterministic"]
        let straight = steps(try run(exact))
        let saved = directory + "/dp2cp2"
        _ = steps(try run(exact + ["--dp", "2", "--cp", "2", "--checkpoint-dir", saved, "--stop-at", "10"], ranks: 2))
        let resumed = steps(try run(exact + ["--resume-from", saved]))
        for step in 11...20 { XCTAssertEqual(resumed[step], straight[step], "dp2·cp2 → one process: step \(step)") }
        let spread = steps(try run(exact + ["--dp", "4", "--cp", "4", "--cp-balance", "--resume-from", saved], ranks: 4))
        for step in 11...20 { XCTAssertEqual(spread[step], straight[step], "dp2·cp2 → dp4·cp4·lb: step \(step)") }
    }

    func testRoundTripThroughAnotherLayoutReproducesEveryTensor() throws {
        let a = directory + "/a", b = directory + "/b", back = directory + "/back"
        _ = steps(try run(Self.base + ["--dp", "2", "--pp", "2", "--checkpoint-dir", a, "--stop-at", "10"], ranks: 4))
        // Zero steps to train: each run loads the checkpoint and saves it again in its own layout.
        _ = steps(try run(Self.base + ["--steps", "10", "--tp", "2", "--resume-from", a, "--checkpoint-dir", b], ranks: 2))
        _ = steps(try run(Self.base + ["--steps", "10", "--dp", "2", "--pp", "2", "--zero", "1", "--resume-from", b, "--checkpoint-dir", back], ranks: 4, mpi: true))
        // ZeRO-3: no rank holds a whole tensor; each block's owner saves it.
        let sharded = directory + "/zero3"
        _ = steps(try run(Self.base + ["--steps", "10", "--dp", "2", "--tp", "2", "--zero", "3", "--resume-from", back, "--checkpoint-dir", sharded], ranks: 4))
        let original = try tensors(a + "/step-00000010")
        XCTAssertEqual(try tensors(b + "/step-00000010"), original, "dp2·pp2 → tp2")
        XCTAssertEqual(try tensors(back + "/step-00000010"), original, "dp2·pp2 → tp2 → dp2·pp2 (ZeRO-1)")
        XCTAssertEqual(try tensors(sharded + "/step-00000010"), original, "… → dp2·tp2 (ZeRO-3)")
    }

    func testAnInterruptedSaveLeavesThePreviousCheckpointValid() throws {
        let checkpoints = directory + "/killed"
        let killed = try run(Self.base + ["--dp", "2", "--checkpoint-dir", checkpoints, "--checkpoint-every", "5"], ranks: 2,
                             environment: ["FLEET_TEST_KILL_DURING_CHECKPOINT": "10"])
        XCTAssertNotEqual(killed.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoints + "/step-00000010/manifest.json"))
        let verify = try FleetProcess.fleet(["checkpoint", "verify", checkpoints])
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertTrue(verify.stdout.contains("step-00000010: incomplete"), verify.output)
        let resumed = try run(Self.base + ["--dp", "2", "--checkpoint-dir", checkpoints, "--resume"], ranks: 2)
        XCTAssertTrue(resumed.stderr.contains("skipped checkpoint") && resumed.stderr.contains("step-00000010"), resumed.output)
        XCTAssertTrue(resumed.stderr.contains("resumed from \(checkpoints)/step-00000005"), resumed.output)
        XCTAssertEqual(steps(resumed).keys.sorted(), Array(6...20))
    }

    func testCorruptAndTruncatedShardsAreNamedWithTheirChecksums() throws {
        let checkpoints = directory + "/corrupt"
        _ = steps(try run(Self.base + ["--steps", "10", "--checkpoint-dir", checkpoints, "--checkpoint-every", "5"]))
        let shard = checkpoints + "/step-00000010/shard-00000.bin"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[bytes.count / 2] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: shard))
        let verify = try FleetProcess.fleet(["checkpoint", "verify", checkpoints])
        XCTAssertEqual(verify.status, 1, verify.output)
        XCTAssertTrue(verify.stdout.contains("\(shard) is corrupt: CRC32C expected "), verify.output)
        XCTAssertTrue(verify.stdout.contains(", found "), verify.output)
        XCTAssertTrue(verify.stdout.contains("ok       \(checkpoints)/step-00000005"), verify.output)
        let resumed = try run(Self.base + ["--steps", "12", "--checkpoint-dir", checkpoints, "--resume"])
        XCTAssertTrue(resumed.stderr.contains("\(shard) is corrupt"), resumed.output)
        XCTAssertEqual(steps(resumed).keys.sorted(), Array(6...12))
        // A truncated shard (as a full disk leaves it) is caught too.
        let other = checkpoints + "/step-00000005/shard-00000.bin"
        try Data(try Data(contentsOf: URL(fileURLWithPath: other)).prefix(1000)).write(to: URL(fileURLWithPath: other))
        let truncated = try FleetProcess.fleet(["checkpoint", "verify", checkpoints + "/step-00000005"])
        XCTAssertEqual(truncated.status, 1)
        XCTAssertTrue(truncated.stdout.contains("\(other) is corrupt"), truncated.output)
    }

    func testIncompatibleCheckpointsAreRefusedClearly() throws {
        let checkpoints = directory + "/tiny"
        _ = steps(try run(Self.base + ["--steps", "2", "--checkpoint-dir", checkpoints]))
        let small = try FleetProcess.fleet(["train", "gpt-small", "--steps", "4", "--resume-from", checkpoints])
        XCTAssertEqual(small.status, 2, "an input error")
        XCTAssertTrue(small.stderr.contains("it holds gpt-tiny (842,496 parameters), this run trains gpt-small"), small.output)
        let seed = try FleetProcess.fleet(Self.base + ["--seed", "7", "--resume-from", checkpoints])
        XCTAssertTrue(seed.stderr.contains("resume with the same seed"), seed.output)
        let manifest = checkpoints + "/step-00000002/manifest.json"
        let text = try String(contentsOfFile: manifest, encoding: .utf8)
        try text.replacingOccurrences(of: "\"version\" : 1", with: "\"version\" : 9").write(toFile: manifest, atomically: true, encoding: .utf8)
        let newer = try FleetProcess.fleet(Self.base + ["--resume-from", checkpoints + "/step-00000002"])
        XCTAssertEqual(newer.status, 2)
        XCTAssertTrue(newer.stderr.contains("format version 9, newer than this fleet reads (1)"), newer.output)
    }

    /// An asynchronous save writes the state of the step it was requested at, although the
    /// weights change while it is written: each equals the synchronous save of that step.
    func testAsynchronousSavesHoldTheStateOfTheirStep() throws {
        let sync = directory + "/sync", async = directory + "/async"
        _ = steps(try run(Self.base + ["--checkpoint-dir", sync, "--checkpoint-every", "4", "--keep", "10"]))
        _ = steps(try run(Self.base + ["--checkpoint-dir", async, "--checkpoint-every", "4", "--keep", "10", "--async-checkpoint"]))
        for step in [4, 8, 12, 16, 20] {
            let name = String(format: "/step-%08d", step)
            XCTAssertEqual(try tensors(async + name), try tensors(sync + name), "step \(step)")
        }
        let inspect = try FleetProcess.fleet(["checkpoint", "inspect", async])
        XCTAssertTrue(inspect.stdout.contains("step 20 of 20, 160 samples seen"), inspect.output)
        XCTAssertTrue(inspect.stdout.contains("written by single process"), inspect.output)
        XCTAssertTrue(inspect.stdout.contains("h3.mlp.proj.w"), inspect.output)
        // --keep 2 prunes older checkpoints.
        let kept = directory + "/kept"
        _ = steps(try run(Self.base + ["--checkpoint-dir", kept, "--checkpoint-every", "4", "--keep", "2"]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: kept).sorted(), ["step-00000016", "step-00000020"])
    }

    func testBenchCheckpointReportsThroughputAndStall() throws {
        let outcome = try FleetProcess.fleet(["bench", "checkpoint", "gpt-tiny", "--repetitions", "2", "--steps", "6", "--json",
                                              "--dir", directory + "/bench"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        for key in ["save_GBps", "plain_GBps", "save_vs_plain", "step_s", "async_stall_s", "sync_stall_s", "async_stall_fraction"] {
            let value = try XCTUnwrap(object[key] as? Double, key)
            XCTAssertTrue(value.isFinite && value >= 0, "\(key) = \(value)")
        }
        // Parameters and both moments of gpt-tiny, plus the shard's header.
        XCTAssertGreaterThan(try XCTUnwrap(object["bytes"] as? Int), 3 * 842_496 * 4)
    }
}
