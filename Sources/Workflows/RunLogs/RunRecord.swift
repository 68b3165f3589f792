import Foundation
import Training
import Workload

/// What a training run leaves in its run directory for `fleet diff`: `run.json` (model,
/// layout, mode, tensor names), `record.jsonl` (per step: loss, gradient norm and a
/// checksum of every parameter tensor, with exact bit patterns) and `final.weights`.
public struct RunRecord {
    public struct Step {
        public let step: Int
        public let loss: Float
        public let gradientNorm: Float
        public let checksums: [UInt64]
    }

    public let directory: String
    public let description: [String: Any]
    public let tensorNames: [String]
    public let steps: [Step]

    public static func describe(directory: String, fields: [(String, Any)], tensorNames: [String]) throws {
        var text = JSONLine.encode(fields)
        text.removeLast()
        text += ",\"tensors\":[" + tensorNames.map { "\"\($0)\"" }.joined(separator: ",") + "]}\n"
        try write(text, to: directory + "/run.json", append: false)
    }

    /// Appends one step (called on the reporting rank); `first`: this process's first step
    /// (a resumed run may start the file, or continue one).
    public static func append(_ m: StepMetrics, directory: String, first: Bool) throws {
        let hex = { (value: UInt64) in String(value, radix: 16) }
        let line = "{\"step\":\(m.step + 1),\"loss\":\(Double(m.loss)),\"loss_bits\":\"\(hex(UInt64(m.loss.bitPattern)))\","
            + "\"grad_norm\":\(Double(m.gradientNorm)),\"grad_norm_bits\":\"\(hex(UInt64(m.gradientNorm.bitPattern)))\","
            + "\"checksums\":[" + (m.checksums ?? []).map { "\"\(hex($0))\"" }.joined(separator: ",") + "]}\n"
        let path = directory + "/record.jsonl"
        if m.step == 0 { return try write(line, to: path, append: false) }
        try FileOutput.append(line, to: path, create: first)
    }

    /// Creates (or replaces) the file, or appends to it. Appending never creates it: a
    /// directory removed mid-run must not leave a record that starts half-way through the run.
    private static func write(_ text: String, to path: String, append: Bool) throws {
        if !append {
            try FileManager.default.createDirectory(atPath: PathName.directory(of: path), withIntermediateDirectories: true)
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        }
        try FileOutput.append(text, to: path, create: !append)
    }

    /// The run's `run.json` (model, layout, mode, tensor names), without its steps; nil when it has none.
    public static func header(_ directory: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: directory + "/run.json") else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// Reads a run directory written by `fleet train --run-dir` (or self-launched workers).
    public init(directory: String) throws {
        self.directory = directory
        func json(_ text: Substring) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
        }
        guard let header = Self.header(directory) else {
            throw FleetError("\(directory) has no readable run.json: pass a run directory written by fleet train --run-dir DIR")
        }
        description = header
        tensorNames = header["tensors"] as? [String] ?? []
        guard let lines = try? String(contentsOfFile: directory + "/record.jsonl", encoding: .utf8) else {
            throw FleetError("\(directory) has no record.jsonl (the run stopped before its first step?)")
        }
        var steps: [Step] = []
        for (number, line) in lines.split(separator: "\n").enumerated() {
            guard let object = json(line), let step = object["step"] as? Int,
                  let loss = (object["loss_bits"] as? String).flatMap({ UInt32($0, radix: 16) }),
                  let norm = (object["grad_norm_bits"] as? String).flatMap({ UInt32($0, radix: 16) }),
                  let sums = object["checksums"] as? [String] else {
                throw FleetError("\(directory)/record.jsonl line \(number + 1) is damaged")
            }
            steps.append(Step(step: step, loss: Float(bitPattern: loss), gradientNorm: Float(bitPattern: norm),
                              checksums: sums.map { UInt64($0, radix: 16) ?? 0 }))
        }
        // A resumed run appends the steps it recomputed: the later record of a step wins.
        var byStep: [Int: Step] = [:]
        for step in steps { byStep[step.step] = step }
        self.steps = byStep.keys.sorted().map { byStep[$0]! }
    }

    /// One line about the run: model, layout, mode, steps.
    public var summary: String {
        let model = description["model"] as? String ?? "?", layout = description["layout"] as? String ?? "?"
        let mode = (description["deterministic"] as? Bool ?? false) ? "deterministic" : "default mode"
        let transport = description["transport"] as? String ?? "?"
        return "\(model), \(layout) over \(transport), \(mode), \(steps.count) steps recorded"
    }
}
