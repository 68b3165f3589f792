import Collectives
import Foundation
import Workflows

/// Real runs for an exercise: this fleet executable started as a child (`fleet train …
/// --json`, `fleet bench collectives … --json`), its JSON lines read back.
enum FleetChild {
    /// Runs `fleet arguments` and returns its JSON lines; a failure is an error with the
    /// command and the child's last words.
    static func json(_ arguments: [String], timeout: Double = 600) throws -> [[String: Any]] {
        let outcome = try ChildProcess.bounded(LocalLauncher.currentExecutable, arguments, timeout: timeout)
        guard outcome.status == 0, !outcome.timedOut else {
            let tail = outcome.stderr.split(separator: "\n").suffix(3).joined(separator: "\n")
            throw LabError("`fleet \(arguments.joined(separator: " "))` \(outcome.timedOut ? "ran past \(Int(timeout)) s" : "exited \(outcome.status)"):\n\(tail)", duringRun: true)
        }
        return outcome.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A `fleet train … --json` run: its step lines and its summary (the line with `final_loss`).
    /// Workers' logs go under `directory` (the lab run's own), not into the user's runs/.
    static func train(_ arguments: [String], in directory: String, name: String, timeout: Double = 600) throws -> (steps: [[String: Any]], summary: [String: Any]) {
        let place = arguments.contains("--run-dir") ? [] : ["--run-dir", directory + "/" + name]
        let lines = try json(["train"] + arguments + place + ["--json"], timeout: timeout)
        guard let summary = lines.last(where: { $0["final_loss"] != nil }) else {
            throw LabError("`fleet train \(arguments.joined(separator: " "))` printed no summary")
        }
        return (lines.filter { $0["step"] != nil }, summary)
    }

    static func number(_ object: [String: Any], _ key: String) -> Double {
        (object[key] as? NSNumber)?.doubleValue ?? .nan
    }

    /// The median of `key` over steps, the first `skip` (warm-up) left out.
    static func median(_ steps: [[String: Any]], _ key: String, skip: Int = 1) -> Double {
        let values = steps.dropFirst(min(skip, max(0, steps.count - 1))).map { number($0, key) }.filter(\.isFinite).sorted()
        guard !values.isEmpty else { return .nan }
        return values.count % 2 == 1 ? values[values.count / 2] : (values[values.count / 2 - 1] + values[values.count / 2]) / 2
    }
}
