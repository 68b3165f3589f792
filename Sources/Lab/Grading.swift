import Foundation

/// Grades a student's answers against fleet's reference answers, question by question.
public struct Grade: Sendable {
    public struct Line: Sendable {
        public let question: String
        public let given: Double?
        public let reference: Double
        public let passed: Bool
        /// Why it passed or what was off, in a sentence.
        public let explanation: String
    }

    public let lines: [Line]
    public var passed: Bool { lines.allSatisfy(\.passed) }

    /// `answers` are the student's; `reference` fleet's (every question of `exercise` needs one).
    public init(_ exercise: Exercise, answers: [String: Double], reference: [String: Double]) throws {
        lines = try exercise.questions.map { q in
            guard let expected = reference[q.id] else {
                throw LabError("no reference for '\(q.id)': it is measured — run `fleet lab run \(exercise.id)` first (or pass --run DIR)")
            }
            let slack = max(q.tolerance * abs(expected), q.absolute)
            guard let given = answers[q.id] else {
                return Line(question: q.id, given: nil, reference: expected, passed: false,
                            explanation: "no answer given (\(q.prompt))")
            }
            let off = abs(given - expected)
            if off <= slack {
                return Line(question: q.id, given: given, reference: expected, passed: true,
                            explanation: "within \(Self.tolerance(q)) of \(Self.format(expected)) \(q.unit)")
            }
            let relative = expected != 0 ? String(format: " (%.0f %% %@)", off / abs(expected) * 100, given > expected ? "high" : "low") : ""
            return Line(question: q.id, given: given, reference: expected, passed: false,
                        explanation: "you said \(Self.format(given)), fleet computed \(Self.format(expected)) \(q.unit)\(relative); "
                            + "allowed \(Self.tolerance(q)). \(q.hint)")
        }
        let known = Set(exercise.questions.map(\.id))
        if let unknown = answers.keys.sorted().first(where: { !known.contains($0) }) {
            throw LabError("'\(unknown)' is not a question of \(exercise.id); its questions are \(exercise.questions.map(\.id).joined(separator: ", "))")
        }
    }

    static func tolerance(_ q: Question) -> String {
        q.tolerance > 0 ? String(format: "%g %%", q.tolerance * 100) : "±\(format(q.absolute))"
    }

    /// A number as a student would write it: plain when moderate, scientific when not.
    public static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        if abs(value) >= 1e6 || abs(value) < 1e-3 { return String(format: "%.4g", value) }
        return String(format: "%.4f", value).replacingOccurrences(of: "0+$", with: "", options: .regularExpression)
    }
}
