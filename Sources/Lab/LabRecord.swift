import Foundation
import Workflows

/// A lab run's directory: `record.json` (exercise, answers, measurements), the table as
/// `table.txt`, and its figures as SVG files.
public enum LabRecord {
    /// Writes the run's files into `directory`; returns the figures' paths.
    @discardableResult
    public static func write(_ outcome: LabOutcome, exercise: Exercise, quick: Bool, directory: String) throws -> [String] {
        let answers = outcome.answers.keys.sorted().map { ($0, outcome.answers[$0]!) as (String, Any) }
        let fields: [(String, Any)] = [("exercise", exercise.id), ("chapter", exercise.chapter), ("quick", quick),
                                       ("answers", JSONObject(answers))] + outcome.record
        try FileOutputText.write(JSONLine.encode(fields) + "\n", to: directory + "/record.json")
        try FileOutputText.write(outcome.table.joined(separator: "\n") + "\n", to: directory + "/table.txt")
        return try outcome.figures.map { figure in
            let path = directory + "/" + figure.name
            try FileOutputText.write(figure.svg, to: path)
            return path
        }
    }

    /// The answers recorded by the newest run of `id` under `root` (or in `directory` when given).
    public static func answers(of id: String, directory: String?, root: String = "runs") throws -> (answers: [String: Double], directory: String)? {
        let candidates = directory.map { [$0] } ?? RunDirectory.list(root).filter { $0.kind == "lab-" + id }.map(\.path)
        for path in candidates {
            guard let data = FileManager.default.contents(atPath: path + "/record.json") else {
                if directory != nil { throw LabError("\(path) has no record.json: pass the directory `fleet lab run \(id)` printed") }
                continue
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let answers = object["answers"] as? [String: Any] else { throw LabError("\(path)/record.json is not a lab record") }
            guard (object["exercise"] as? String) == id else {
                throw LabError("\(path) holds a run of \(object["exercise"] as? String ?? "another exercise"), not \(id)")
            }
            return (answers.compactMapValues { ($0 as? NSNumber)?.doubleValue }, path)
        }
        return nil
    }
}

/// Whole-file writes for the lab's outputs, with a one-line error naming the file.
enum FileOutputText {
    static func write(_ text: String, to path: String) throws {
        do { try text.write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw LabError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
