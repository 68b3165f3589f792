import Foundation

/// One question a student answers before the run: a number, graded within a tolerance.
public struct Question: Sendable {
    public let id: String
    public let prompt: String
    /// The unit the answer is given in (`bytes`, `s`, `fraction`, `1 for yes, 0 for no`, …).
    public let unit: String
    /// Relative tolerance (0.05 = within 5 %), and an absolute one for answers near zero.
    public let tolerance: Double
    public let absolute: Double
    /// Whether the reference answer comes from the student's own run (measured), not a
    /// closed form or a simulation (which `fleet lab check` computes without a run).
    public let measured: Bool
    /// What to think about when the answer is off.
    public let hint: String

    public init(_ id: String, _ prompt: String, unit: String, tolerance: Double = 0.02, absolute: Double = 0, measured: Bool = false, hint: String) {
        self.id = id
        self.prompt = prompt
        self.unit = unit
        self.tolerance = tolerance
        self.absolute = absolute
        self.measured = measured
        self.hint = hint
    }
}

/// How a lab run is made: quick (≤ 3 minutes on 2 cores) or full, where its files go, and
/// where it reports progress.
public struct LabSettings: Sendable {
    public var quick: Bool
    public var directory: String
    public var progress: @Sendable (String) -> Void

    public init(quick: Bool, directory: String, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.quick = quick
        self.directory = directory
        self.progress = progress
    }
}

/// What a run produced: the table it prints, its figures (SVG), the reference answers (from
/// closed forms, the simulator and what it measured) and the record's other fields.
public struct LabOutcome {
    public var table: [String] = []
    public var figures: [(name: String, svg: String)] = []
    public var answers: [String: Double] = [:]
    public var record: [(String, Any)] = []
    public var notes: [String] = []

    public init() {}
}

/// A Volume II exercise: questions to predict, an experiment that runs real ranks or the
/// simulator, reference answers computed by fleet, and a stretch question.
public protocol Exercise: Sendable {
    var id: String { get }
    /// The Volume II topic (chapter) it belongs to.
    var chapter: String { get }
    var title: String { get }
    /// Minutes a student needs for the whole exercise: reading, predicting, running, checking
    /// and the stretch question (the run itself takes seconds to a minute; `--quick` at most 3).
    var minutes: Int { get }
    /// What the experiment runs: `worker processes (ZeroMQ)`, `simulator`, or both.
    var needs: String { get }
    /// Background with the formulas the questions use.
    var background: String { get }
    var questions: [Question] { get }
    var stretch: String { get }
    /// The fleet commands the experiment amounts to, for a student to run by hand.
    func commands(quick: Bool) -> [String]
    /// Numbers a student needs for the questions that fleet works out for this setup (a
    /// checkpoint's write time, a cluster's failure rate), shown by `fleet lab show`.
    func givens() throws -> [String]
    /// Reference answers that need no run (closed forms, the simulator).
    func solve() throws -> [String: Double]
    /// Runs the experiment; its answers include `solve()`'s and those measured.
    func run(_ settings: LabSettings) throws -> LabOutcome
}

/// An exercise's mistake in use: an unknown id, a missing run, a bad answers file.
public struct LabError: Error, CustomStringConvertible {
    public let description: String
    /// A failure while the experiment ran (exit 3), not a mistake in use (exit 2).
    public let duringRun: Bool
    public init(_ description: String, duringRun: Bool = false) {
        self.description = description
        self.duringRun = duringRun
    }
}

extension Exercise {
    public func givens() throws -> [String] { [] }
}
