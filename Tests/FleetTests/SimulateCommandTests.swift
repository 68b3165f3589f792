import Foundation
import Workload
import XCTest

/// `fleet simulate` through the real binary, on the scenarios shipped in scenarios/.
final class SimulateCommandTests: FleetProcessTestCase {
    static var scenarios: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scenarios").path
    }
    func testEveryShippedScenarioSimulatesWithFiniteNumbersAndRepeatsByteForByte() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.scenarios).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 3)
        for file in files {
            let path = Self.scenarios + "/" + file
            let first = try FleetProcess.fleet(["simulate", path, "--json"]), second = try FleetProcess.fleet(["simulate", path, "--json"])
            XCTAssertEqual(first.status, 0, "\(file): \(first.output)")
            XCTAssertEqual(first.stdoutBytes, second.stdoutBytes, "\(file): the same scenario gives the same output")
            // One JSON document per call: the step (or the sweep's points) and the reliability run.
            XCTAssertEqual(first.stdout.split(separator: "\n").count, 1, "\(file): one document")
            let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(first.stdoutBytes)) as? [String: Any], file)
            if let serving = document["serving"] as? [String: Any] {
                for key in ["ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "output_tokens_per_s", "kv_occupancy_mean"] {
                    let value = try XCTUnwrap(serving[key] as? Double, "\(file): \(key)")
                    XCTAssertTrue(value.isFinite && value >= 0, "\(file): \(key) = \(value)")
                }
                XCTAssertNotNil(serving["highest_rate_meeting_objectives"] as? Double, file)
                continue
            }
            if let reliability = document["reliability"] as? [String: Any] {
                for key in ["goodput", "checkpoint_interval_s", "mtbf_s", "optimal_interval_s", "young_daly_interval_s", "failure_probability", "expected_failures"] {
                    let value = try XCTUnwrap(reliability[key] as? Double, "\(file): \(key)")
                    XCTAssertTrue(value.isFinite && value > 0, "\(file): \(key) = \(value)")
                }
                XCTAssertGreaterThan(try XCTUnwrap(reliability["failures"] as? Int), 0, file)
            }
            let points = try XCTUnwrap((document["step"] as? [String: Any]).map { [$0] } ?? document["points"] as? [[String: Any]], file)
            for object in points {
                guard object["problem"] == nil || object["step_s"] != nil else { continue }
                for section in ["fabric", "energy", "memory"] { XCTAssertNotNil(object[section] as? [String: Any], "\(file): \(section)") }
                for key in ["step_s", "tokens_per_s", "mfu", "compute_s", "bubble_fraction", "memory_per_gpu_bytes"] {
                    let value = try XCTUnwrap(object[key] as? Double, "\(file): \(key)")
                    XCTAssertTrue(value.isFinite && value >= 0, "\(file): \(key) = \(value)")
                }
                // Per stage, from the shard plan: what one rank holds, counted once over the stages.
                let stages = try XCTUnwrap(object["stages"] as? [[String: Any]], "\(file): stages")
                XCTAssertFalse(stages.isEmpty, file)
                for stage in stages {
                    for key in ["parameters", "dp_bytes", "tp_bytes", "pp_bytes"] {
                        XCTAssertGreaterThanOrEqual(try XCTUnwrap((stage[key] as? NSNumber)?.doubleValue, "\(file): stages.\(key)"), 0)
                    }
                }
                XCTAssertGreaterThan(try XCTUnwrap((object["parameters"] as? NSNumber)?.doubleValue, file), 0)
            }
            let human = try FleetProcess.fleet(["simulate", path])
            XCTAssertEqual(human.status, 0, human.output)
        }
    }

    func testTraceAndPlotFilesAreWritten() throws {
        let trace = directory + "/step.json", plot = directory + "/sweep.svg"
        let one = try FleetProcess.fleet(["simulate", Self.scenarios + "/gpt3-175b-h100.yaml", "--trace", trace])
        XCTAssertEqual(one.status, 0, one.output)
        XCTAssertTrue(one.stdout.contains("step time"), one.output)
        XCTAssertTrue(one.stdout.contains("bubble"), one.output)
        XCTAssertTrue(one.stdout.contains("memory per GPU"), one.output)
        let events = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace))) as? [String: Any])["traceEvents"] as? [[String: Any]]
        XCTAssertGreaterThan(events?.count ?? 0, 100)
        let sweep = try FleetProcess.fleet(["simulate", Self.scenarios + "/llama-70b-sweep.yaml", "--plot", plot])
        XCTAssertEqual(sweep.status, 0, sweep.output)
        XCTAssertTrue(sweep.stdout.contains("does not run: the layout needs"), "memory limits are reported per point: \(sweep.output)")
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("<rect"), svg)
    }

    func testReliabilityScenariosPrintTheirGoodputTableAndPlot() throws {
        let plot = directory + "/goodput.svg"
        let outcome = try FleetProcess.fleet(["simulate", Self.scenarios + "/llama-405b-16k-reliability.yaml", "--plot", plot])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        for text in ["cluster MTBF", "goodput 0.", "failures: ", "time lost: rework", "checkpoint interval sweep", "best interval", "Young–Daly"] {
            XCTAssertTrue(outcome.stdout.contains(text), "\(text): \(outcome.output)")
        }
        XCTAssertTrue(try String(contentsOfFile: plot, encoding: .utf8).contains("goodput per checkpoint interval"))
        let path = directory + "/bad.yaml"
        let text = try String(contentsOfFile: Self.scenarios + "/llama-405b-16k-reliability.yaml", encoding: .utf8)
            .replacingOccurrences(of: "mttf: 143000 h", with: "mttf: 143000 years")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try FleetProcess.fleet(["simulate", path])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("mttf must be a number with a unit"), bad.output)
    }

    func testSweepsSpreadOverMPIRanksGiveTheSameTable() throws {
        let path = Self.scenarios + "/llama-70b-sweep.yaml"
        let single = try FleetProcess.fleet(["simulate", path, "--json"])
        let spread = try FleetProcess.mpirun(3, ["simulate", path, "--json"])
        XCTAssertEqual(spread.status, 0, spread.output)
        XCTAssertEqual(spread.stdout, single.stdout, "3 MPI ranks, one share of the points each, gathered in order on rank 0")
        let table = try FleetProcess.mpirun(2, ["simulate", path])
        XCTAssertEqual(table.stdout, try FleetProcess.fleet(["simulate", path]).stdout)
    }

    func testBenchSimulateReportsEveryCase() throws {
        let outcome = try FleetProcess.fleet(["bench", "simulate", "--json"], timeout: 300)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let objects = try outcome.stdout.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(objects.compactMap { $0["ranks"] as? Int }, [4096, 4096, 100_000, 16_384, 16_384, 100_352, 100_352])
        // Full fidelity beside the symmetric run of the same scenario, reproducing its step.
        let full = objects.filter { ($0["case"] as? String ?? "").hasSuffix("every pipeline") }
        XCTAssertEqual(full.count, 2)
        XCTAssertTrue(full.allSatisfy { $0["reproduces_symmetric"] as? Bool == true }, "\(full)")
        for object in objects {
            for key in ["wall_s", "peak_rss_MB", "simulated_s"] {
                XCTAssertTrue((object[key] as? Double).map { $0.isFinite && $0 > 0 } ?? false, "\(key) in \(object)")
            }
            XCTAssertEqual(object["fidelity"] as? String, "flow")
        }
        let ring = objects[0], closed = try XCTUnwrap(ring["closed_form_s"] as? Double), simulated = try XCTUnwrap(ring["simulated_s"] as? Double)
        XCTAssertLessThanOrEqual(abs(simulated - closed) / closed, 1e-3)
    }

    /// Full fidelity (`--every-pipeline`) on every shipped scenario (but the 100k one, which
    /// `fleet bench simulate` covers): the same JSON byte for byte but for how it was reduced
    /// and how many events it took — uniform fleets are symmetric, and an uneven one's
    /// reduction simulates every pipeline that differs.
    func testEveryPipelineGivesTheSameStepOnEveryShippedScenario() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.scenarios).filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("100k") }.sorted()
        func document(_ arguments: [String]) throws -> String {
            let outcome = try FleetProcess.fleet(["simulate"] + arguments + ["--json"], timeout: 300)
            XCTAssertEqual(outcome.status, 0, outcome.output)
            // Drop the two fields that say how the step was found.
            return outcome.stdout.replacingOccurrences(of: #""events":[0-9]+,"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #""reductions":"[^"]*","#, with: "", options: .regularExpression)
        }
        for file in files {
            let path = Self.scenarios + "/" + file
            let (reduced, full) = (try document([path]), try document([path, "--every-pipeline"]))
            XCTAssertFalse(reduced.contains("\"reductions\""), file)
            XCTAssertEqual(reduced, full, file)
        }
    }

    func testBadScenariosFailWithLineColumnAndHint() throws {
        let path = directory + "/bad.yaml"
        try "cluster:\n  device: H100\n  nodes: two\n".write(toFile: path, atomically: true, encoding: .utf8)
        let outcome = try FleetProcess.fleet(["simulate", path])
        XCTAssertEqual(outcome.status, 2, "an input error")
        XCTAssertTrue(outcome.stderr.contains("bad.yaml:3:10: cluster.nodes must be a whole number ≥ 1 (got 'two')"), outcome.output)
        let missing = try FleetProcess.fleet(["simulate", directory + "/none.yaml"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("cannot read scenario"), missing.output)
        // A layout that does not fit in memory is a clear error, after the report that shows why.
        let text = try String(contentsOfFile: Self.scenarios + "/gpt3-175b-h100.yaml", encoding: .utf8)
            .replacingOccurrences(of: "{dp: 16, tp: 8, pp: 8, microbatches: 96, schedule: 1f1b, zero: 1, recompute: full}",
                                  with: "{dp: 128, tp: 1, pp: 8, microbatches: 12, schedule: 1f1b, zero: 0, recompute: none}")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let big = try FleetProcess.fleet(["simulate", path])
        XCTAssertEqual(big.status, 2, "the scenario asks for what cannot run: " + big.output)
        XCTAssertTrue(big.stderr.contains("more than H100's 80.0 GiB"), big.output)
    }

    /// `fleet plan --json` names the model's parameters and, per rank, what the shard plan gives it.
    func testPlanReportsParametersFromTheShardPlan() throws {
        let outcome = try FleetProcess.fleet(["plan", "llama-8b", "--dp", "4", "--zero", "1", "--batch", "8", "--seq", "2048", "--bucket", "256MiB", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["parameters"] as? Int, 8_030_261_248)
        let ranks = try XCTUnwrap(object["ranks"] as? [[String: Any]])
        XCTAssertEqual(ranks.count, 4)
        XCTAssertEqual(ranks[0]["parameters_held"] as? Int, 8_030_261_248, "one stage holds every parameter, the untied head too")
        XCTAssertEqual(ranks[0]["optimizer_parameters"] as? Int, 8_030_261_248 / 4, "ZeRO-1 shards the optimizer over dp 4")
        // Each rank's step program, op by op: ZeRO-1's buckets reduce-scattered (fp32, 256 MiB at most)
        // and all-gathered, the update of a quarter of the model, every matrix product with its FLOPs.
        let ops = try XCTUnwrap(ranks[1]["ops"] as? [[String: Any]])
        let scatters = ops.filter { $0["kind"] as? String == "reduce_scatter" }
        XCTAssertEqual(scatters.reduce(0) { $0 + ($1["bytes"] as? Int ?? 0) }, 8_030_261_248 * 4)
        XCTAssertTrue(scatters.allSatisfy { ($0["bytes"] as? Int ?? .max) <= 256 << 20 && $0["group"] as? String == "data" })
        XCTAssertEqual(ops.filter { $0["kind"] as? String == "all_gather" }.count, scatters.count)
        let updated = ops.filter { $0["kind"] as? String == "optimizer" }.compactMap { $0["parameters"] as? Int }
        XCTAssertEqual(updated.count, 1)
        XCTAssertEqual(Double(updated[0]), 8_030_261_248 / 4, accuracy: Double(scatters.count))
        let flops = ops.compactMap { ($0["flops"] as? NSNumber)?.doubleValue }.reduce(0, +)
        XCTAssertEqual(flops, ModelCatalog.llama8B.trainingFLOPsPerToken(sequence: 2048) * 2 * 2048, accuracy: 1e-6 * flops,
                       "2 sequences of 2048 tokens per rank, three times the forward")
        XCTAssertEqual(Set(ops.compactMap { $0["phase"] as? String }), ["forward 0", "backward 0", "optimizer", "loss"], "every bucket starts inside the backward pass")
    }

    /// An uneven fleet names its critical path and each element's delay in --json.
    func testAnAsymmetricScenarioNamesItsCriticalPath() throws {
        let outcome = try FleetProcess.fleet(["simulate", Self.scenarios + "/llama-70b-asymmetric.yaml", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        let object = try XCTUnwrap(document["step"] as? [String: Any])
        let rank = try XCTUnwrap(object["slowest_rank"] as? Int)
        XCTAssertGreaterThanOrEqual(rank / 8, 120, "an A100 node (120–127) sets the step")
        XCTAssertTrue((object["critical_path"] as? String ?? "").hasSuffix("is a different device (A100)"), "\(object["critical_path"] ?? "")")
        let elements = try XCTUnwrap(object["asymmetry"] as? [[String: Any]])
        XCTAssertEqual(elements.count, 4)
        XCTAssertTrue(elements.allSatisfy { ($0["delay_s"] as? Double ?? -1) >= 0 })
        XCTAssertTrue((object["reductions"] as? String ?? "").hasPrefix("asymmetric fleet: "))
    }

    /// `fleet plan --json` for interleaved 1F1B: the bubble is (p − 1)/(V·m + p − 1), each rank
    /// lists its chunks (the simulator's side is EngineTests.testInterleavedBubbleMatchesTheClosedForm).
    func testPlanGivesTheInterleavedBubbleAndChunks() throws {
        let outcome = try FleetProcess.fleet(["plan", "gpt-tiny", "--pp", "2", "--microbatches", "4", "--schedule", "interleaved", "--json"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["virtual_stages"] as? Int, 2)
        XCTAssertEqual(try XCTUnwrap(object["bubble_fraction"] as? Double), 1.0 / 9.0, accuracy: 1e-9)
        let ranks = try XCTUnwrap(object["ranks"] as? [[String: Any]])
        XCTAssertEqual(ranks.map { $0["chunks"] as? [[Int]] }, [[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
        XCTAssertNil(ranks[0]["layers"], "a stage of two chunks has no single layer range")
        // Phases name the chunk as traces and the simulator's timeline do: `forward 3.1`.
        let phases = Set(try XCTUnwrap(ranks[1]["ops"] as? [[String: Any]]).compactMap { $0["phase"] as? String })
        XCTAssertTrue(phases.isSuperset(of: ["forward 3", "forward 3.1", "backward 0.1", "backward 0"]), "\(phases.sorted())")
        // In-flight activation memory: stage 0 holds 5 chunk passes of half its layers where 1F1B holds 2 micro-batches.
        let plain = try FleetProcess.fleet(["plan", "gpt-tiny", "--pp", "2", "--microbatches", "4", "--json"])
        func activations(_ object: [String: Any]) throws -> [Double] {
            try XCTUnwrap(object["memory_per_stage"] as? [[String: Any]]).map { ($0["activation_bytes"] as? NSNumber)?.doubleValue ?? 0 }
        }
        let plainObject = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(try activations(object)[0] / activations(plainObject)[0], 2.5 / 2, accuracy: 1e-9)
        let text = try FleetProcess.fleet(["plan", "gpt-tiny", "--pp", "2", "--microbatches", "4", "--schedule", "interleaved"])
        XCTAssertTrue(text.stdout.contains("F0.1"), "chunk 1's passes are named: \(text.output)")
    }
}
