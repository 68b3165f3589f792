import Collectives
import Foundation
import Workflows

/// A rank killed mid-run, the supervisor restarting the job from its newest checkpoint, and
/// the result checked bit for bit against a run without the fault.
struct FaultRecovery: Exercise {
    let id = "fault-recovery"
    let chapter = "Fault Tolerance"
    let title = "Kill a rank, recover from the checkpoint, and prove nothing changed"
    let minutes = 25
    let needs = "worker processes (ZeroMQ)"
    let background = """
        With checkpoints every c steps, a failure during step k rolls the job back to the newest checkpoint,
        c · ⌊(k − 1)/c⌋: the k − 1 − c·⌊(k − 1)/c⌋ steps completed since then are recomputed. A supervisor
        detects the failure (a dead process, a deadline), stops the survivors, and restarts every rank with
        --resume. In deterministic mode the restarted job computes the same bits as one that never failed,
        so recovery can be checked exactly: `fleet diff` compares every step's parameter checksums.
        The run: gpt-tiny dp2, 20 steps, a checkpoint every 5, rank 1 killed (SIGKILL) during step 14.
        """
    let questions = [
        Question("recomputed-steps", "Steps recomputed after the crash", unit: "steps",
                 hint: "Completed steps since the newest checkpoint: (k − 1) − c·⌊(k − 1)/c⌋."),
        Question("bitwise-equal", "Does the recovered run end with parameters bitwise equal to a run without the fault? (1 yes, 0 no)",
                 unit: "1 or 0", tolerance: 0, absolute: 0.5, measured: true,
                 hint: "Deterministic mode fixes every reduction order; resuming restores weights, moments, step and data position."),
    ]
    let stretch = "Inject the crash during a checkpoint save instead (--inject checkpoint:rank=1,step=10,mode=torn): which checkpoint does the restart use, and how does fleet know the torn one is incomplete?"
    let crashStep = 14, every = 5, steps = 20

    func arguments(_ directory: String, fault: Bool) -> [String] {
        ["gpt-tiny", "--dp", "2", "--batch", "4", "--seq", "32", "--steps", "\(steps)", "--deterministic", "--log-every", "1000",
         "--run-dir", directory + (fault ? "/faulty" : "/reference")]
            + (fault ? ["--checkpoint-dir", directory + "/ck", "--checkpoint-every", "\(every)", "--max-restarts", "1",
                        "--inject", "crash:rank=1,step=\(crashStep)"] : [])
    }

    func commands(quick: Bool) -> [String] {
        ["fleet train " + arguments("runs/recovery", fault: false).joined(separator: " "),
         "fleet train " + arguments("runs/recovery", fault: true).joined(separator: " "),
         "fleet diff runs/recovery/reference runs/recovery/faulty"]
    }

    func solve() throws -> [String: Double] {
        ["recomputed-steps": Double((crashStep - 1) - every * ((crashStep - 1) / every))]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        settings.progress("a fault-free reference run…")
        _ = try FleetChild.train(arguments(settings.directory, fault: false), in: settings.directory, name: "")
        settings.progress("the same run with rank 1 killed during step \(crashStep)…")
        _ = try FleetChild.train(arguments(settings.directory, fault: true), in: settings.directory, name: "")
        let events = try String(contentsOfFile: settings.directory + "/faulty/events.jsonl", encoding: .utf8)
        guard let finished = events.split(separator: "\n").compactMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
            .last(where: { $0["event"] as? String == "finished" }) else { throw LabError("the supervised run wrote no `finished` event") }
        let recomputed = FleetChild.number(finished, "recomputed_steps")
        let diff = try ChildProcess.bounded(LocalLauncher.currentExecutable, ["diff", settings.directory + "/reference", settings.directory + "/faulty"], timeout: 120)
        guard diff.status == 0 || diff.status == 1 else { throw LabError("fleet diff failed: \(diff.stderr)") }
        var outcome = LabOutcome()
        let table = Table(columns: [("", 30), ("predicted", 10), ("measured", 10)])
        outcome.table = ["gpt-tiny dp2, deterministic, checkpoint every \(every), rank 1 killed during step \(crashStep)", table.header(),
                         table.row(["steps recomputed", Show.num(try solve()["recomputed-steps"]!), Show.num(recomputed)]),
                         table.row(["bitwise equal to the reference", "—", diff.status == 0 ? "yes" : "no"])]
        outcome.notes = diff.stdout.split(separator: "\n").prefix(3).map(String.init)
        outcome.figures = [("recovery.svg", SVGChart.bars(title: "work per step index: done once, or twice after the crash", unit: "times computed",
                                                          (1...steps).map { step in
                                                              let redone = step > every * ((crashStep - 1) / every) && step < crashStep
                                                              return ("step \(step)", redone ? 2 : 1)
                                                          }))]
        outcome.answers = try solve().merging(["bitwise-equal": diff.status == 0 ? 1 : 0]) { a, _ in a }
        outcome.record = [("recomputed_steps", recomputed), ("bitwise_equal", diff.status == 0)]
        return outcome
    }
}
