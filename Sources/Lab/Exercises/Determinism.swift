import Collectives
import Foundation
import Workflows

/// Why one process and two ranks disagree in the last bits, and how fleet makes them agree.
struct Determinism: Exercise {
    let id = "determinism"
    let chapter = "Reproducibility"
    let title = "Floating point is not associative: bitwise reproducibility across layouts"
    let minutes = 25
    let needs = "worker processes (ZeroMQ)"
    let background = """
        Float32 addition rounds at every step, so (a + b) + c need not equal a + (b + c). A data-parallel
        all-reduce sums the replicas' gradients in an order set by the algorithm and the number of ranks; one
        process sums the same per-sample gradients in another. The results differ in their last bits, the
        differences grow through training, and two layouts of the same job never agree exactly.
        fleet's --deterministic fixes every order (per-sample gradients summed in one tree whatever the layout,
        a fixed reduction tree for the all-reduce), so one process, dp2, tp2 and pp2 give the same bits — at a
        cost in speed the run shows.
        """
    let questions = [
        Question("float-gap", "In float32, (1e8 + (−1e8)) + 1 minus (1e8 + (−1e8 + 1))", unit: "value",
                 tolerance: 0, absolute: 1e-6, hint: "Near 1e8 the float32 spacing is 8: −1e8 + 1 rounds back to −1e8."),
        Question("default-identical", "Are one process and dp2 bitwise identical after 6 steps by default? (1 yes, 0 no)", unit: "1 or 0",
                 tolerance: 0, absolute: 0.5, measured: true, hint: "The all-reduce adds the two replicas' sums; one process adds all samples in one loop."),
        Question("deterministic-identical", "And with --deterministic? (1 yes, 0 no)", unit: "1 or 0",
                 tolerance: 0, absolute: 0.5, measured: true, hint: "Every order is fixed whatever the layout."),
    ]
    let stretch = "Measure what the deterministic mode costs in tokens/s for dp2 and tp2 — where does the time go?"

    func arguments(_ directory: String, dp: Int, deterministic: Bool) -> [String] {
        ["gpt-tiny", "--dp", "\(dp)", "--batch", "8", "--seq", "64", "--steps", "6", "--log-every", "1000",
         "--run-dir", "\(directory)/dp\(dp)\(deterministic ? "-deterministic" : "")"] + (deterministic ? ["--deterministic"] : [])
    }

    func commands(quick: Bool) -> [String] {
        [false, true].flatMap { d in [1, 2].map { "fleet train " + arguments("runs/det", dp: $0, deterministic: d).joined(separator: " ") } }
            + ["fleet diff runs/det/dp1 runs/det/dp2", "fleet diff runs/det/dp1-deterministic runs/det/dp2-deterministic"]
    }

    func solve() throws -> [String: Double] {
        let a: Float = 1e8, b: Float = -1e8, c: Float = 1
        return ["float-gap": Double(((a + b) + c) - (a + (b + c)))]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        var identical: [Bool] = [], rates: [[Double]] = []
        for deterministic in [false, true] {
            var pair: [Double] = []
            for dp in [1, 2] {
                settings.progress("gpt-tiny dp\(dp)\(deterministic ? " --deterministic" : "")…")
                let run = try FleetChild.train(arguments(settings.directory, dp: dp, deterministic: deterministic), in: settings.directory, name: "")
                pair.append(FleetChild.median(run.steps, "tokens_per_s", skip: 1))
            }
            rates.append(pair)
            let suffix = deterministic ? "-deterministic" : ""
            let diff = try ChildProcess.bounded(LocalLauncher.currentExecutable,
                                                ["diff", "\(settings.directory)/dp1\(suffix)", "\(settings.directory)/dp2\(suffix)"], timeout: 120)
            guard diff.status == 0 || diff.status == 1 else { throw LabError("fleet diff failed: \(diff.stderr)") }
            identical.append(diff.status == 0)
        }
        var outcome = LabOutcome()
        let table = Table(columns: [("mode", 14), ("one process", 12), ("dp2", 10), ("bitwise equal", 14)])
        outcome.table = ["gpt-tiny, 8 × 64 tokens, 6 steps: one process against dp2 (tokens/s, `fleet diff` on every step's checksums)",
                         table.header(),
                         table.row(["default", String(format: "%.0f", rates[0][0]), String(format: "%.0f", rates[0][1]), identical[0] ? "yes" : "no"]),
                         table.row(["deterministic", String(format: "%.0f", rates[1][0]), String(format: "%.0f", rates[1][1]), identical[1] ? "yes" : "no"])]
        outcome.figures = [("cost.svg", SVGChart.bars(title: "gpt-tiny tokens/s: default vs deterministic", unit: "tokens/s",
                                                      [("default, one process", rates[0][0]), ("default, dp2", rates[0][1]),
                                                       ("deterministic, one process", rates[1][0]), ("deterministic, dp2", rates[1][1])]))]
        outcome.answers = try solve().merging(["default-identical": identical[0] ? 1 : 0, "deterministic-identical": identical[1] ? 1 : 0]) { a, _ in a }
        outcome.record = [("identical", [identical[0] ? 1.0 : 0, identical[1] ? 1.0 : 0]), ("tokens_per_s", rates.flatMap { $0 })]
        return outcome
    }
}
