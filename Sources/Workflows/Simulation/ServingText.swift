import Engine
import Foundation

/// A serving simulation as `fleet simulate` prints it, and its `--json` document.
public enum ServingText {
    /// `sweep`: `ServingSimulator.sweep(s)`, run once by the caller.
    public static func lines(_ s: ServingScenario, _ r: ServingReport, sweep: [(rate: Double, report: ServingReport)]) -> [String] {
        var lines = ["serving \(s.model.name) on \(s.instances) instance(s) of \(s.tp) × \(s.device.name) (\(s.precision.rawValue), \(Int(s.efficiency * 100)) % of peak), "
                     + "KV cache \(Units.bytes(s.kvBudget)) per instance (\(Units.bytes(s.kvBytesPerToken)) per token), batches of up to \(s.maxBatch)"
                     + (s.prefillInstances.map { "; disaggregated: \($0) prefill + \(s.instances - $0) decode instance(s), KV handed over at \(Units.bandwidth(s.handoverBandwidth))" } ?? "")]
        lines.append(String(format: "at %.3g requests/s (prompts %.0f, outputs %.0f tokens on average) for %@: %d requests",
                            s.rate, s.prompt.mean, s.output.mean, Units.duration(s.duration), r.requests))
        lines += row(r).map { "  " + $0 }
        if !s.rates.isEmpty {
            let objectives = [s.ttftObjective.map { "TTFT p99 ≤ \(Units.duration($0))" }, s.tpotObjective.map { String(format: "TPOT p99 ≤ %.0f ms", $0 * 1000) }]
                .compactMap { $0 }.joined(separator: ", ")
            lines.append("rate sweep\(objectives.isEmpty ? "" : " against \(objectives)"):")
            let table = Table(columns: [("req/s", 7), ("tokens/s", 10), ("TTFT p50", 10), ("TTFT p99", 10), ("TPOT p50", 10), ("TPOT p99", 10), ("KV mean", 8), ("meets", 6)])
            lines.append(table.header())
            for (rate, x) in sweep {
                lines.append(table.row([String(format: "%g", rate), String(format: "%.0f", x.outputTokensPerSecond), ms(x.ttft.p50), ms(x.ttft.p99),
                                        ms(x.tpot.p50), ms(x.tpot.p99), String(format: "%.0f %%", x.kvOccupancy.mean * 100),
                                        x.meets(ttft: s.ttftObjective, tpot: s.tpotObjective) ? "yes" : "no"]))
            }
            lines.append(ServingSimulator.highestRate(s, in: sweep).map { String(format: "highest rate meeting the objectives: %g requests/s (%.0f output tokens/s)", $0.rate, $0.report.outputTokensPerSecond) }
                         ?? "no rate in the sweep meets the objectives")
        }
        return lines
    }

    static func row(_ r: ServingReport) -> [String] {
        [String(format: "throughput %.2f requests/s, %.0f output tokens/s", r.completedPerSecond, r.outputTokensPerSecond),
         "time to first token p50 \(ms(r.ttft.p50)), p99 \(ms(r.ttft.p99)); time per output token p50 \(ms(r.tpot.p50)), p99 \(ms(r.tpot.p99))",
         String(format: "KV cache occupancy mean %.0f %%, peak %.0f %%", r.kvOccupancy.mean * 100, r.kvOccupancy.peak * 100)]
    }

    public static func document(_ s: ServingScenario, _ r: ServingReport, sweep: [(rate: Double, report: ServingReport)]) -> [(String, Any)] {
        func fields(_ rate: Double, _ x: ServingReport) -> [(String, Any)] {
            [("rate", rate), ("requests", x.requests), ("requests_per_s", x.completedPerSecond), ("output_tokens_per_s", x.outputTokensPerSecond),
             ("ttft_p50_s", x.ttft.p50), ("ttft_p99_s", x.ttft.p99), ("tpot_p50_s", x.tpot.p50), ("tpot_p99_s", x.tpot.p99),
             ("kv_occupancy_mean", x.kvOccupancy.mean), ("kv_occupancy_peak", x.kvOccupancy.peak),
             ("meets_objectives", x.meets(ttft: s.ttftObjective, tpot: s.tpotObjective))]
        }
        var serving: [(String, Any)] = [("model", s.model.name), ("instances", s.instances), ("prefill_instances", s.prefillInstances ?? 0), ("tp", s.tp), ("kv_budget_bytes", s.kvBudget),
                                        ("kv_bytes_per_token", s.kvBytesPerToken)] + fields(s.rate, r)
        if !s.rates.isEmpty {
            serving.append(("sweep", sweep.map { fields($0.rate, $0.report) }))
            serving.append(("highest_rate_meeting_objectives", ServingSimulator.highestRate(s, in: sweep)?.rate ?? Double.nan))
        }
        return [("scenario", s.name), ("serving", JSONObject(serving))]
    }

    static func ms(_ seconds: Double) -> String { seconds >= 1 ? String(format: "%.2f s", seconds) : String(format: "%.1f ms", seconds * 1000) }
}
