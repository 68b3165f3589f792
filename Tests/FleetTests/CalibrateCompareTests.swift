import Foundation
import XCTest

/// `fleet calibrate` and `fleet compare` through the real binary: the scenario calibrate
/// writes is one the simulator reads, and compare records every prediction before it runs.
final class CalibrateCompareTests: FleetProcessTestCase {
    private func calibrate() throws -> String {
        let out = directory + "/local.yaml"
        let run = try FleetProcess.fleet(["calibrate", "--repeats", "1", "--out", out, "--storage-dir", directory,
                                          "--layouts", "dp1,dp2,tp2pp2", "--transports", "zmq,mpi", "--fabric", "mpi"], timeout: 300)
        XCTAssertEqual(run.status, 0, run.output)
        return out
    }

    func testCalibrateWritesAnAnnotatedScenarioTheSimulatorReads() throws {
        let out = try calibrate()
        let yaml = try String(contentsOfFile: out, encoding: .utf8)
        // The cores are this process's (its affinity); the busy transport figures put two ranks on each.
        let cores = try XCTUnwrap(yaml.firstMatch(of: #/cores: ([0-9]+)/#).flatMap { Int($0.1) })
        XCTAssertTrue((1...ProcessInfo.processInfo.activeProcessorCount).contains(cores), yaml)
        XCTAssertTrue(yaml.contains("# mpi, \(2 * cores) ranks"), yaml)
        for expected in ["name: local", "in_step:", "pinned: true", "waiting: sleep", "meeting_wait:", "handoff_wait:", "oversubscribed_meeting_wait:", "gemm:", "trans: B",
                         "layernorm_backward:", "optimizer:", "storage:", "per_client:", "# zmq, 2 ranks", "all-reduce (native",
                         "repeats_gflops: [", "kernel_repeats_ns:", "in_step_repeats: [", "wait_repeats_us:", "oversubscribed_meeting_wait: [", "handoff_wait: [", cores > 1 ? "contention: " : "in_step:", "transport: mpi"] {
            XCTAssertTrue(yaml.contains(expected), "calibration lacks \(expected):\n\(yaml)")
        }
        XCTAssertTrue(yaml.contains("spread"), "every figure says how much it varied")
        let simulated = try FleetProcess.fleet(["simulate", out, "--json"])
        XCTAssertEqual(simulated.status, 0, simulated.output)
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(simulated.stdoutBytes)) as? [String: Any])
        let step = try XCTUnwrap((document["step"] as? [String: Any])?["step_s"] as? Double)
        XCTAssertTrue(step.isFinite && step > 0.001 && step < 10, "a gpt-tiny step on a CPU: \(step) s")
    }

    func testCompareRecordsPredictionsBeforeItRunsAndReportsFiniteNumbers() throws {
        let scenario = try calibrate()
        let runs = directory + "/compare", plot = directory + "/scaling.svg"
        let run = try FleetProcess.fleet(["compare", "gpt-tiny", "--scenario", scenario, "--layouts", "dp1,dp2,tp2pp2", "--steps", "4", "--warmup", "1",
                                          "--transport", "zmq", "--run-dir", runs, "--json", "--plot", plot, "--retries", "1"], timeout: 300)
        XCTAssertEqual(run.status, 0, run.output)
        let rows = try run.stdout.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(rows.compactMap { $0["layout"] as? String }, ["dp1", "dp2", "tp2pp2"])
        XCTAssertEqual(rows.compactMap { $0["hosts"] as? String }, ["local", "local", "local"])
        // Calibrated over MPI (--fabric mpi), run over ZeroMQ: said before the runs.
        XCTAssertTrue(run.stderr.contains("was calibrated over mpi") && run.stderr.contains("calibrate with --fabric zmq"), run.stderr)
        let calibratedCores = try String(contentsOfFile: scenario, encoding: .utf8).firstMatch(of: #/core_speeds: \[([0-9., ]+)\]/#)
            .map { $0.1.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } } ?? []
        // Hosts for a scenario of one machine: refused before any run, saying how to calibrate across them.
        let elsewhere = try FleetProcess.fleet(["compare", "gpt-tiny", "--scenario", scenario, "--hosts", "198.18.0.1,198.18.0.2", "--layouts", "dp1",
                                                "--transport", "zmq", "--run-dir", directory + "/elsewhere"])
        XCTAssertNotEqual(elsewhere.status, 0)
        XCTAssertTrue(elsewhere.stderr.contains("describes one machine: calibrate across the hosts first"), elsewhere.output)
        for row in rows {
            for key in ["measured_step_s", "simulated_step_s", "error_pct", "measured_compute_s", "simulated_compute_s"] {
                let value = try XCTUnwrap(row[key] as? Double, "\(key) in \(row)")
                XCTAssertTrue(value.isFinite, "\(key) = \(value)")
            }
            let measured = row["measured_step_s"] as! Double, simulated = row["simulated_step_s"] as! Double
            XCTAssertEqual(row["error_pct"] as! Double, (simulated - measured) / measured * 100, accuracy: 1e-9)
            // Drift control: the machine's speed was probed before the run, and the rescaled prediction follows from it.
            let drift = try XCTUnwrap(row["drift_pct"] as? Double, "drift_pct in \(row)")
            XCTAssertTrue(drift.isFinite && drift > -100, "drift \(drift) %")
            let adjusted = try XCTUnwrap(row["drift_adjusted_simulated_s"] as? Double)
            let now = try XCTUnwrap(row["core_speeds_now"] as? [Double])
            if now.isEmpty {
                // Simulated again on the rescaled calibration: a faster machine now, a shorter step.
                XCTAssertTrue(drift >= 0 ? adjusted <= simulated : adjusted >= simulated, "drift \(drift) %: \(simulated) → \(adjusted)")
            } else {
                // Each core probed: the drift is their mean, and dp1 (all compute, on core 0) follows core 0 from its calibrated speed to its speed now.
                XCTAssertEqual(drift, (now.reduce(0, +) / Double(now.count) - 1) * 100, accuracy: 1e-9)
                if row["layout"] as? String == "dp1" {
                    XCTAssertEqual(adjusted, simulated * (calibratedCores.first ?? 1) / now[0], accuracy: 1e-6 * simulated, "\(calibratedCores) → \(now)")
                }
            }
            // Run again only when the machine was unsteady (at most --retries 1 more); 3 measured steps have no pace spread.
            let attempts = try XCTUnwrap(row["attempts"] as? Int), kept = try XCTUnwrap(row["kept_attempt"] as? Int)
            XCTAssertTrue((1...2).contains(attempts) && (1...attempts).contains(kept), "\(attempts) runs, kept \(kept)")
            XCTAssertEqual(row["measured_pace_spread_pct"] as? Double, 0)
            if attempts == 1 { XCTAssertLessThanOrEqual(abs(drift), 8, "a steady first run is not run again") }
            XCTAssertEqual(row["drift_adjusted_error_pct"] as! Double, (adjusted - measured) / measured * 100, accuracy: 1e-9)
            let low = try XCTUnwrap(row["drift_adjusted_p10_s"] as? Double), high = try XCTUnwrap(row["drift_adjusted_p90_s"] as? Double)
            XCTAssertTrue(low <= high && low > 0, "\(low)–\(high)")
            XCTAssertEqual(row["measured_inside_drift_adjusted_interval"] as? Bool, low <= measured && measured <= high)
            // The prediction interval over calibrate's repeats, and whether the measurement fell in it.
            let p10 = try XCTUnwrap(row["simulated_p10_s"] as? Double), p90 = try XCTUnwrap(row["simulated_p90_s"] as? Double)
            XCTAssertTrue(p10.isFinite && p10 > 0 && p10 <= p90, "\(p10)–\(p90)")
            XCTAssertEqual(row["measured_inside_interval"] as? Bool, p10 <= measured && measured <= p90)
            // The scaling view: speed-ups over the dp1 row of the same run, measured and simulated.
            let dp1 = rows[0]
            XCTAssertEqual(row["measured_speedup"] as? Double ?? .nan, (dp1["measured_step_s"] as! Double) / measured, accuracy: 1e-12)
            XCTAssertEqual(row["simulated_speedup"] as? Double ?? .nan, (dp1["simulated_step_s"] as! Double) / simulated, accuracy: 1e-12)
        }
        XCTAssertEqual(rows[0]["measured_speedup"] as? Double, 1)
        // Every prediction was on disk before the first rank of any run wrote its log.
        let files = FileManager.default
        let predicted = try XCTUnwrap(files.attributesOfItem(atPath: runs + "/predictions.jsonl")[.modificationDate] as? Date)
        for layout in ["dp1", "dp2", "tp2pp2"] {
            let log = try XCTUnwrap(files.attributesOfItem(atPath: "\(runs)/\(layout)/rank-0.steps.jsonl")[.creationDate] as? Date
                                    ?? files.attributesOfItem(atPath: "\(runs)/\(layout)/rank-0.steps.jsonl")[.modificationDate] as? Date)
            XCTAssertLessThanOrEqual(predicted, log, layout)
        }
        let predictions = try String(contentsOfFile: runs + "/predictions.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(predictions.count, 3)
        for (line, row) in zip(predictions, rows) {
            let p = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(p["simulated_step_s"] as? Double, row["simulated_step_s"] as? Double, "the table shows the recorded prediction")
            XCTAssertEqual(p["simulated_p90_s"] as? Double, row["simulated_p90_s"] as? Double, "and its interval, recorded before the run")
        }
        let svg = try String(contentsOfFile: plot, encoding: .utf8)
        XCTAssertTrue(svg.contains("<polyline") && svg.contains("measured") && svg.contains("simulated"))
        XCTAssertTrue(svg.contains("speed-up over one process"), "with dp1 the plot shows scaling")

        // The human table under MPI: predictions printed first, then the table with the error column.
        let human = try FleetProcess.fleet(["compare", "gpt-tiny", "--scenario", scenario, "--layouts", "dp2", "--steps", "4", "--warmup", "1",
                                            "--transport", "mpi", "--run-dir", directory + "/mpi"], timeout: 300)
        XCTAssertEqual(human.status, 0, human.output)
        let prediction = try XCTUnwrap(human.stdout.range(of: "simulated")), table = try XCTUnwrap(human.stdout.range(of: "measured ms"))
        XCTAssertLessThan(prediction.lowerBound, table.lowerBound)
        XCTAssertTrue(human.stdout.contains("|error|"), human.stdout)
        XCTAssertTrue(human.stdout.contains("machine speed before each run vs the calibration"), human.stdout)
        XCTAssertTrue(human.stdout.contains("inside the simulated 10–90 % interval"), human.stdout)
        XCTAssertTrue(human.stdout.contains("add dp1 to --layouts"), "without dp1 no speed-up, and it says how to get one: " + human.stdout)
    }

    func testCompareExplainsWhatIsMissingOrWrong() throws {
        let missing = try FleetProcess.fleet(["compare", "--scenario", directory + "/none.yaml"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("fleet calibrate"), missing.output)
        let scenario = directory + "/s.yaml"
        try "name: x\n".write(toFile: scenario, atomically: true, encoding: .utf8)
        let badLayout = try FleetProcess.fleet(["compare", "--scenario", scenario, "--layouts", "dq2"])
        XCTAssertNotEqual(badLayout.status, 0)
        XCTAssertTrue(badLayout.output.contains("dp2pp2"), badLayout.output)
        let zero = try FleetProcess.fleet(["compare", "--scenario", scenario, "--layouts", "dp2z1", "--dp-algo", "hierarchical"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.output.contains("reduce-scatters them under ZeRO"), zero.output)
        let impossible = try FleetProcess.fleet(["compare", "--scenario", scenario, "--layouts", "tp3"])
        XCTAssertNotEqual(impossible.status, 0)
        XCTAssertTrue(impossible.output.contains("tp"), impossible.output)
    }
}
