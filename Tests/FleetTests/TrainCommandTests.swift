import Foundation
import XCTest

/// `fleet train`, `fleet generate` and `fleet bench train` as a user runs them.
final class TrainCommandTests: FleetProcessTestCase {
    func testTrainJSONHasPerStepAndSummaryObjects() throws {
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "5", "--batch", "2", "--seq", "32", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let objects = try outcome.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
        XCTAssertEqual(objects.count, 6)
        for (i, step) in objects.prefix(5).enumerated() {
            XCTAssertEqual(step["step"] as? Int, i + 1)
            for key in ["loss", "tokens_per_s", "step_s"] { XCTAssertNotNil(step[key] as? Double, "\(key) in \(step)") }
        }
        for key in ["final_loss", "val_loss", "tokens_per_s", "mfu"] { XCTAssertNotNil(objects[5][key] as? Double, "\(key)") }
    }

    func testHumanOutputShowsProgressAndSummary() throws {
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "4", "--batch", "2", "--seq", "32", "--log-every", "2"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.stdout.contains("step     2/4  loss"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("tok/s"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("validation loss"), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains("MFU"), outcome.stdout)
    }

    func testTrainOnAFileThenGenerateFromTheSavedWeights() throws {
        let directory = NSTemporaryDirectory() + "fleet-train-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let text = String(repeating: "to be or not to be, that is the question. ", count: 200)
        try text.write(toFile: directory + "/data.txt", atomically: true, encoding: .utf8)
        let train = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "3", "--batch", "2", "--seq", "64",
                                            "--data", directory + "/data.txt", "--save", directory + "/w.bin"])
        XCTAssertEqual(train.status, 0, train.output)
        let generate = try FleetProcess.fleet(["generate", "--weights", directory + "/w.bin", "--prompt", "to be", "--tokens", "20"])
        XCTAssertEqual(generate.status, 0, generate.output)
        XCTAssertTrue(generate.stdoutBytes.starts(with: Array("to be".utf8)), generate.stdout)
        XCTAssertEqual(generate.stdoutBytes.count, "to be".utf8.count + 20 + 1, "prompt, 20 bytes and a newline")
        let damaged = try FleetProcess.fleet(["generate", "--weights", directory + "/data.txt"])
        XCTAssertEqual(damaged.status, 2)
        XCTAssertTrue(damaged.stderr.contains("not a fleet weights file"), damaged.output)
    }

    func testBadInputGivesAClearErrorAndNonZeroExit() throws {
        let cases: [([String], String)] = [
            (["train", "gpt-huge"], "gpt-huge"),
            (["train", "gpt-tiny", "--steps", "0"], "--steps must be positive"),
            (["train", "gpt-tiny", "--batch", "-3"], "--batch"),
            (["train", "gpt-tiny", "--seq", "500"], "context of 128"),
            (["train", "gpt-tiny", "--data", "/nonexistent/file.txt"], "cannot read data file /nonexistent/file.txt"),
        ]
        for (arguments, message) in cases {
            let outcome = try FleetProcess.fleet(arguments)
            XCTAssertEqual(outcome.status, 2, "an input error: " + arguments.joined(separator: " "))
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments): \(outcome.output)")
        }
        let path = NSTemporaryDirectory() + "fleet-short-\(getpid()).txt"
        try "too short".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let short = try FleetProcess.fleet(["train", "gpt-tiny", "--data", path])
        XCTAssertEqual(short.status, 2)
        XCTAssertTrue(short.stderr.contains("holds 9 bytes"), short.output)
    }

    func testBenchTrainReportsThroughputAndMFU() throws {
        let outcome = try FleetProcess.fleet(["bench", "train", "gpt-tiny", "--steps", "3", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        for key in ["tokens_per_s", "achieved_gflops", "sgemm_gflops", "mfu", "mfu_cpu_peak", "blas_kernel", "blas_kernel_source", "vs_pytorch"] { XCTAssertNotNil(object[key], key) }
        XCTAssertGreaterThan(object["mfu"] as? Double ?? 0, 0)
    }

    /// Runs that could only end silently wrong are refused before any work.
    func testImpossibleRequestsAreRefusedUpFront() throws {
        let huge = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "9223372036854775807"])
        XCTAssertNotEqual(huge.status, 0)
        XCTAssertTrue(huge.stderr.contains("more than fleet runs"), huge.output)
        let late = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "5", "--inject", "crash:rank=0,step=50"])
        XCTAssertNotEqual(late.status, 0)
        XCTAssertTrue(late.stderr.contains("planned for step 50, but the run has --steps 5"), late.output)
        // Resuming a checkpoint that already holds every step has nothing to train.
        let ck = directory + "/ck"
        let first = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--checkpoint-dir", ck])
        XCTAssertEqual(first.status, 0, first.output)
        let again = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--checkpoint-dir", ck, "--resume"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("nothing is left to train"), again.output)
        XCTAssertFalse(again.stdout.contains("final loss nan"), again.output)
        // Weights saved onto a directory never claim to be saved.
        let onto = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1", "--save", directory])
        XCTAssertNotEqual(onto.status, 0)
        XCTAssertTrue(onto.stderr.contains("it is a directory; name a file"), onto.output)
        XCTAssertFalse(onto.stdout.contains("weights saved"), onto.output)
        // Hierarchical buckets with what has no all-reduce buckets, ZeRO stages fleet does not have or
        // replicas that hold nothing in common, and hosts that cannot hold the ranks.
        for (arguments, message) in [(["--dp-algo", "hierarchical", "--deterministic"], "drop one of them"),
                                     (["--dp-algo", "hierarchical", "--zero", "1"], "the buckets are reduce-scattered"),
                                     (["--dp-algo", "tree"], "--dp-algo must be ring or hierarchical"),
                                     (["--zero", "4"], "--zero takes a ZeRO stage: 0 (none), 1 (optimizer state), 2 (and gradients) or 3"),
                                     (["--zero", "3", "--check-replicas", "2"], "each rank holds only its own block"),
                                     (["--hosts", "a:1"], "4 ranks need 4 slots"),
                                     (["--hosts", "a:0"], "--hosts: 'a:0': the slots after ':' must be a whole number")] {
            let refused = try FleetProcess.fleet(["train", "gpt-tiny", "--dp", "4", "--steps", "1"] + arguments)
            XCTAssertNotEqual(refused.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(refused.stderr.contains(message), refused.output)
        }
    }

    /// Two runs started together in one directory never share a run directory.
    func testRunsStartedTogetherGetTheirOwnRunDirectories() throws {
        let lock = NSLock()
        var directories: [String] = []
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            guard let outcome = try? FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1", "--batch", "4", "--seq", "16", "--dp", "2"]) else { return }
            let line = outcome.stdout.split(separator: "\n").first { $0.hasPrefix("per-rank logs: ") }
            lock.lock()
            if let line { directories.append(String(line.dropFirst("per-rank logs: ".count).dropLast("/rank-*.log".count))) }
            lock.unlock()
        }
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }
        XCTAssertEqual(directories.count, 2, "both runs finished and named their run directory")
        XCTAssertEqual(Set(directories).count, 2, "\(directories)")
    }

    /// File system errors are one line with the path and the cause; impossible warm-ups are refused.
    func testBadPathsAndWarmUpsSayWhatIsWrong() throws {
        let missing = try FleetProcess.fleet(["generate", "--weights", "/nonexistent/tiny.weights"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/tiny.weights: No such file or directory"), missing.output)
        XCTAssertFalse(missing.stderr.contains("NSCocoaErrorDomain"), missing.output)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.output)
        let warmup = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "3", "--warmup", "5"])
        XCTAssertNotEqual(warmup.status, 0)
        XCTAssertTrue(warmup.stderr.contains("--warmup 5 is not shorter than --steps 3"), warmup.output)
        // Output paths are checked before any work, not after the last step.
        let trace = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "100000", "--trace", "/nonexistent/trace.json"])
        XCTAssertEqual(trace.status, 2, trace.output)
        XCTAssertTrue(trace.stderr.contains("--trace /nonexistent/trace.json: its directory /nonexistent does not exist"), trace.output)
        XCTAssertLessThan(trace.seconds, 30, "refused before training")
        let plot = try FleetProcess.fleet(["simulate", "scenarios/gpt3-175b-h100.yaml", "--plot", NSTemporaryDirectory()])
        XCTAssertEqual(plot.status, 2, plot.output)
        XCTAssertTrue(plot.stderr.contains("it is a directory"), plot.output)
        let short = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--batch", "2", "--seq", "16"])
        XCTAssertEqual(short.status, 0, short.output)
        XCTAssertTrue(short.stdout.contains("the warm-up spans the whole run"), short.stdout)
    }
}
