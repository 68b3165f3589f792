import Foundation
import XCTest

/// Data- and pipeline-parallel training over real worker processes equals the single-process run.
///
/// Why the tolerance is not zero: splitting the global batch changes the order in which
/// per-sample gradient contributions are summed (per micro-batch, then across micro-batches,
/// then across data-parallel ranks in ring order), and Float32 addition is not associative.
/// Every rank uses the same samples, initial values and per-element loss scaling, so what
/// remains is rounding: observed differences are ~1e-7 relative; 1e-5 leaves room for 10 steps.
final class ParallelTrainingTests: FleetProcessTestCase {
    static let common = ["train", "gpt-tiny", "--steps", "10", "--batch", "8", "--seq", "64", "--json", "--eval-batches", "2"]
    private func losses(_ outcome: FleetProcess.Outcome) throws -> [Double] {
        let objects = try outcome.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
        return objects.compactMap { $0["step"] != nil ? $0["loss"] as? Double : nil }
    }

    private func parameters(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
        return data.subdata(in: (12 + headerLength)..<data.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    private func reference() throws -> (losses: [Double], parameters: [Float]) {
        let path = directory + "/reference.w"
        let outcome = try FleetProcess.fleet(Self.common + ["--save", path])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        return (try losses(outcome), try parameters(path))
    }

    private func assertMatches(_ layout: [String], mpi: Bool, reference: (losses: [Double], parameters: [Float]),
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let path = directory + "/\(layout.joined())-\(mpi).w"
        let arguments = Self.common + layout + ["--save", path]
        let ranks = FleetProcess.ranks(of: layout)
        let outcome = mpi ? try FleetProcess.mpirun(ranks, arguments) : try FleetProcess.fleet(arguments + ["--transport", "zmq"])
        let name = "\(layout.joined(separator: " ")) over \(mpi ? "MPI" : "ZeroMQ")"
        XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.output)", file: file, line: line)
        let measured = try losses(outcome)
        XCTAssertEqual(measured.count, reference.losses.count, "\(name): one JSON line per step from one rank", file: file, line: line)
        for (step, (a, b)) in zip(measured, reference.losses).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b) / abs(b), 1e-5, "\(name): loss of step \(step + 1): \(a) vs \(b)", file: file, line: line)
        }
        let weights = try parameters(path)
        XCTAssertEqual(weights.count, reference.parameters.count, file: file, line: line)
        let worst = zip(weights, reference.parameters).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(name): final parameters differ by up to \(worst)", file: file, line: line)
    }

    func testDataAndPipelineLayoutsEqualOneProcessOverMPI() throws {
        let reference = try reference()
        for layout in [["--dp", "2"], ["--dp", "4"], ["--tp", "2"], ["--tp", "4"], ["--pp", "2"], ["--pp", "4"],
                       ["--dp", "2", "--tp", "2"], ["--dp", "2", "--pp", "2"], ["--tp", "2", "--pp", "2"],
                       ["--dp", "2", "--zero", "1"], ["--dp", "2", "--pp", "2", "--zero", "1"],
                       ["--dp", "4", "--zero", "3"], ["--dp", "2", "--pp", "2", "--zero", "3"], ["--dp", "2", "--tp", "2", "--zero", "2"],
                       ["--tp", "2", "--pp", "2", "--schedule", "gpipe"],
                       ["--pp", "2", "--schedule", "gpipe", "--microbatches", "2"], ["--pp", "4", "--schedule", "1f1b", "--microbatches", "8"],
                       ["--dp", "2", "--pp", "2", "--schedule", "interleaved", "--virtual-stages", "2", "--microbatches", "2"],
                       ["--tp", "2", "--sequence-parallel"], ["--dp", "2", "--tp", "2", "--sequence-parallel"]] {
            try assertMatches(layout, mpi: true, reference: reference)
        }
    }

    func testDataAndPipelineLayoutsEqualOneProcessOverZeroMQ() throws {
        let reference = try reference()
        for layout in [["--dp", "2"], ["--tp", "2"], ["--pp", "2"], ["--dp", "2", "--pp", "2"], ["--tp", "2", "--pp", "2"],
                       ["--dp", "2", "--tp", "2", "--zero", "1"], ["--dp", "2", "--zero", "3"],
                       ["--pp", "4", "--schedule", "gpipe"], ["--pp", "2", "--schedule", "interleaved", "--microbatches", "4"],
                       ["--tp", "2", "--pp", "2", "--sequence-parallel"]] {
            try assertMatches(layout, mpi: false, reference: reference)
        }
    }

    /// Per step, on the reporting rank: a TP block all-reduces once after attention and once
    /// after the MLP going forward, and once for each LayerNorm input going backward; dp sums
    /// every gradient once in 1 MiB buckets; a pipeline stage sends one message per micro-batch.
    func testCommunicationPerStepIsExactlyWhatTheLayoutImplies() throws {
        let rows = 8 * 64, c = 128, layers = 4, parameters = 842_496
        func traffic(_ layout: [String]) throws -> [String: Int] {
            let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1", "--batch", "8", "--seq", "64", "--json",
                                                  "--eval-batches", "1"] + layout)
            XCTAssertEqual(outcome.status, 0, outcome.output)
            let first = try XCTUnwrap(outcome.stdout.split(separator: "\n").first)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
            return object.compactMapValues { $0 as? Int }
        }
        let tp = try traffic(["--tp", "2"])
        XCTAssertEqual(tp["tp_allreduces"], 4 * layers)
        XCTAssertEqual(tp["tp_bytes"], 4 * layers * rows * c * 4)
        XCTAssertEqual(tp["dp_allreduces"], 0)
        // Sequence parallelism: per layer two norms gathered forward, and backward the residual's
        // gradient twice and the norms again (half of the rows each); four sums reduce-scattered,
        // two norms' gradients all-reduced; the head's norm gathered and its gradient summed; the
        // embeddings' gradient gathered.
        let sp = try traffic(["--tp", "2", "--sequence-parallel"])
        XCTAssertEqual(sp["tp_allreduces"], 12 * layers + 3)
        XCTAssertEqual(sp["tp_bytes"], (6 * layers + 2) * rows / 2 * c * 4 + 4 * layers * rows * c * 4 + (2 * layers + 1) * 2 * c * 4)
        let dp = try traffic(["--dp", "2", "--bucket", "1MiB"])
        XCTAssertEqual(dp["dp_allreduces"], (parameters + 262_143) / 262_144)
        XCTAssertEqual(dp["dp_bytes"], parameters * 4)
        XCTAssertEqual(dp["tp_allreduces"], 0)
        let pp = try traffic(["--pp", "2", "--microbatches", "4"])
        XCTAssertEqual(pp["pp_messages"], 4, "the last stage sends one gradient per micro-batch")
        XCTAssertEqual(pp["pp_bytes"], rows * c * 4)
        // Interleaved over two chunks per stage: the last stage (virtual stages 1 and 3) sends
        // gradients 3 → 2 and 1 → 0 and activations 1 → 2, each once per micro-batch.
        let interleaved = try traffic(["--pp", "2", "--microbatches", "4", "--schedule", "interleaved", "--virtual-stages", "2"])
        XCTAssertEqual(interleaved["pp_messages"], 3 * 4)
        XCTAssertEqual(interleaved["pp_bytes"], 3 * rows * c * 4)
    }

    func testTraceHoldsEveryRanksComputeAndCommunicationOnOneClock() throws {
        let path = directory + "/trace.json"
        let layout = ["--batch", "8", "--seq", "64", "--dp", "2", "--pp", "2", "--tp", "1", "--microbatches", "2"]
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "3", "--trace-steps", "2", "--trace", path] + layout)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let trace = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let spans = try XCTUnwrap(trace["traceEvents"] as? [[String: Any]]).filter { $0["ph"] as? String == "X" }
        XCTAssertEqual(Set(spans.compactMap { $0["pid"] as? Int }), [0, 1, 2, 3])
        for rank in 0..<4 {
            let mine = spans.filter { $0["pid"] as? Int == rank }
            // 2 steps × 2 micro-batches, a forward and a backward each.
            XCTAssertEqual(mine.filter { ($0["name"] as? String)?.hasPrefix("forward") == true }.count, 4, "rank \(rank)")
            XCTAssertEqual(mine.filter { ($0["name"] as? String)?.hasPrefix("backward") == true }.count, 4, "rank \(rank)")
            XCTAssertTrue(mine.contains { $0["cat"] as? String == "data-parallel" }, "rank \(rank) has gradient sync spans")
            XCTAssertTrue(mine.contains { $0["cat"] as? String == "pipeline" }, "rank \(rank) waits on its pipeline neighbour")
        }
        // One clock: the whole run spans seconds, not the distance between unrelated clocks.
        let starts = spans.compactMap { $0["ts"] as? Double }
        XCTAssertLessThan(starts.max()! - starts.min()!, 60e6)

        // Every op each rank ran in each traced step is an event whose args are the plan's op.
        let plan = try FleetProcess.fleet(["plan", "gpt-tiny", "--json"] + layout)
        XCTAssertEqual(plan.status, 0, plan.output)
        let ranks = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])?["ranks"] as? [[String: Any]])
        let keys = ["kind", "group", "bytes", "m", "n", "k", "trans_a", "trans_b", "elements", "parameters", "flops"]
        func line(_ fields: [String: Any]) -> String { keys.compactMap { key in fields[key].map { "\(key)=\($0)" } }.joined(separator: " ") }
        for rank in 0..<4 {
            let planned = try XCTUnwrap(ranks[rank]["ops"] as? [[String: Any]]).map(line)
            let ops = spans.filter { $0["pid"] as? Int == rank }.compactMap { $0["args"] as? [String: Any] }
            XCTAssertEqual(Set(ops.compactMap { $0["step"] as? Int }), [0, 1], "rank \(rank): --trace-steps 2 traces two steps")
            for step in 0..<2 {
                let ran = ops.filter { $0["step"] as? Int == step }.map(line)
                XCTAssertEqual(ran, planned, "rank \(rank) step \(step)")
                XCTAssertTrue(ops.allSatisfy { $0["rank"] as? Int == rank })
            }
        }
    }

    func testSelfLaunchedRunKeepsPerRankLogsInTheRunDirectory() throws {
        let runDir = directory + "/run"
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--batch", "8", "--seq", "64", "--dp", "2",
                                              "--run-dir", runDir])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        XCTAssertTrue(outcome.stdout.contains("per-rank logs: \(runDir)"), outcome.stdout)
        for rank in 0..<2 {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(runDir)/rank-\(rank).log"))
            let steps = try String(contentsOfFile: "\(runDir)/rank-\(rank).steps.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(steps.count, 2, "rank \(rank) logs each of its steps")
            XCTAssertTrue(steps.allSatisfy { $0.contains("\"rank\":\(rank)") && $0.contains("compute_s") })
        }
        XCTAssertTrue(try String(contentsOfFile: "\(runDir)/rank-0.log", encoding: .utf8).contains("step     2/2"))
    }

    func testInterruptingTheLauncherStopsEveryWorker() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: FleetProcess.binary)
        process.arguments = ["train", "gpt-tiny", "--steps", "100000", "--dp", "2", "--run-dir", directory + "/interrupted"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until both workers are up, then Ctrl-C the launcher.
        let deadline = Date().addingTimeInterval(30)
        while FleetProcess.runningFleetProcesses().count < 3 && Date() < deadline { usleep(50_000) }
        usleep(500_000)
        kill(process.processIdentifier, SIGINT)
        let stopped = Date().addingTimeInterval(15)
        while process.isRunning && Date() < stopped { usleep(50_000) }
        XCTAssertFalse(process.isRunning, "the launcher must exit after Ctrl-C")
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        XCTAssertNotEqual(process.terminationStatus, 0)
        // tearDown checks that no worker is left behind.
    }

    func testImpossibleLayoutsFailBeforeAnyWorkOnEveryRank() throws {
        let wrongWorld = try FleetProcess.mpirun(3, ["train", "gpt-tiny", "--steps", "2", "--dp", "2", "--pp", "2"])
        XCTAssertNotEqual(wrongWorld.status, 0)
        XCTAssertEqual(wrongWorld.stderr.components(separatedBy: "= 4, but this run has 3 ranks").count - 1, 3,
                       "every rank reports it: \(wrongWorld.output)")
        let unevenChunks = try FleetProcess.mpirun(2, ["train", "gpt-tiny", "--steps", "2", "--pp", "2", "--schedule", "interleaved", "--virtual-stages", "3"])
        XCTAssertNotEqual(unevenChunks.status, 0)
        XCTAssertEqual(unevenChunks.stderr.components(separatedBy: "2 × 3 = 6 equal chunks").count - 1, 2, "every rank reports it: \(unevenChunks.output)")
        XCTAssertFalse(unevenChunks.stdout.contains("step "), unevenChunks.output)
        let cases: [([String], String)] = [
            (["--pp", "5"], "more pipeline stages than gpt-tiny has layers"),
            (["--tp", "3"], "which --tp 3 does not divide"),
            (["--tp", "8"], "which --tp 8 does not divide"),
            (["--dp", "2", "--microbatches", "3"], "3 micro-batches do not divide"),
            (["--dp", "3"], "not divisible by --dp 3"),
            (["--ranks", "3", "--dp", "2", "--pp", "2"], "--ranks 3 contradicts the layout dp2·pp2"),
            (["--pp", "2", "--schedule", "interleaved", "--virtual-stages", "3"], "use --virtual-stages 2"),
            (["--pp", "2", "--schedule", "interleaved", "--microbatches", "1"], "must be a multiple of 2"),
            (["--pp", "2", "--virtual-stages", "2"], "needs --schedule interleaved"),
            (["--dp", "2", "--sequence-parallel"], "needs --tp 2 or more"),
            (["--tp", "2", "--sequence-parallel", "--seq", "63"], "use --seq 62"),
        ]
        for (layout, message) in cases {
            let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2"] + layout)
            XCTAssertEqual(outcome.status, 2, "an input error: " + layout.joined(separator: " "))
            XCTAssertTrue(outcome.stderr.contains(message), "\(layout): \(outcome.output)")
            XCTAssertFalse(outcome.stdout.contains("step "), "no step may run: \(outcome.output)")
        }
    }
}
