import ArgumentParser
import Foundation
import Lab
import Workflows

struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Volume II exercises: predict, run on real ranks or the simulator, and check your answers.",
        discussion: """
        Each exercise asks questions to answer before the run, runs an experiment (real worker processes where a
        laptop can, the simulator where it cannot), prints a table, writes SVG figures and a JSON record into
        runs/lab-ID-<time>/, and grades your answers against ones fleet computes.
          fleet lab list
          fleet lab show pipeline-bubble
          fleet lab run pipeline-bubble --quick
          fleet lab check pipeline-bubble --answers my-answers.json
        """,
        subcommands: [LabList.self, LabShow.self, LabRun.self, LabCheck.self])
}

struct LabList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The exercises: id, chapter, title, minutes, what they run.")

    @Flag(help: "Print {\"exercises\": [{\"id\", \"chapter\", \"title\", \"minutes\" (a student's time for the whole exercise), \"needs\", \"mpirun\", \"questions\"}, …]}.")
    var json = false

    func run() throws {
        if json {
            let rows = LabCatalog.all.map { e -> [(String, Any)] in
                [("id", e.id), ("chapter", e.chapter), ("title", e.title), ("minutes", e.minutes),
                 ("needs", e.needs), ("mpirun", false), ("questions", e.questions.map(\.id))]
            }
            return Console.json([("exercises", rows)])
        }
        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
        Console.out(pad("id", 24) + "  " + pad("chapter", 24) + "  min  " + pad("runs", 25) + "  title")
        for e in LabCatalog.all {
            Console.out(pad(e.id, 24) + "  " + pad(e.chapter, 24) + "  " + pad("\(e.minutes)", 3) + "  " + pad(e.needs, 25) + "  " + e.title)
        }
        Console.out("\(LabCatalog.all.count) exercises over \(Set(LabCatalog.all.map(\.chapter)).count) chapters; none needs mpirun. "
                    + "Start with: fleet lab show \(LabCatalog.all[0].id)")
    }
}

struct LabShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "The questions, the background with its formulas, and the commands an exercise runs.")

    @Argument(help: "Exercise id (fleet lab list).")
    var id: String

    func run() throws {
        try Console.reportingErrors {
            let e = try LabCatalog.named(id)
            Console.out("\(e.id) — \(e.title)\nchapter: \(e.chapter); about \(e.minutes) min with the questions (the run: under a minute, --quick ≤ 3); runs \(e.needs)\n")
            Console.out(e.background)
            let givens = try e.givens()
            if !givens.isEmpty { Console.out("\nGiven:\n" + givens.map { "  " + $0 }.joined(separator: "\n")) }
            Console.out("\nPredict, before the run (answer in a JSON file: {\"question-id\": number, …}):")
            for q in e.questions {
                let tolerance = q.tolerance > 0 ? String(format: "±%g %%", q.tolerance * 100) : "±\(Grade.format(q.absolute))"
                Console.out("  \(q.id): \(q.prompt) [\(q.unit); \(tolerance)\(q.measured ? "; graded against your run" : "")]")
            }
            Console.out("\nStretch: \(e.stretch)\n\nThe experiment runs:")
            e.commands(quick: false).forEach { Console.out("  " + $0) }
            Console.out("\nThen: fleet lab run \(e.id) [--quick], and fleet lab check \(e.id) --answers FILE")
        }
    }
}

struct LabRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run an exercise's experiment: a table, SVG figures and a JSON record in a run directory.")

    @Argument(help: "Exercise id (fleet lab list).")
    var id: String

    @Flag(help: "A shorter run: at most 3 minutes on a 2-core laptop.")
    var quick = false

    @Flag(help: "Print the reference answers fleet computed (closed forms, the simulator and this run) as {\"answers\": {…}}.")
    var solution = false

    @Flag(help: "Print the outcome as one JSON object (answers, figures, record directory) instead of a table.")
    var json = false

    @Option(help: "Directory for the run's files (default: runs/lab-ID-<time>).")
    var runDir: String?

    func validate() throws {
        do { _ = try LabCatalog.named(id) } catch { throw ValidationError("\(error)") }
        try OutputPath.check(runDir, flag: "--run-dir", as: .directory)
    }

    func run() throws {
        try Console.reportingErrors {
            let exercise = try LabCatalog.named(id)
            let directory = try runDir ?? RunDirectory.create("lab-" + id)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let quiet = json || solution
            let settings = LabSettings(quick: quick, directory: directory, progress: { line in if !quiet { Console.progress(line) } })
            let start = ContinuousClock.now
            let outcome = try exercise.run(settings)
            let seconds = (ContinuousClock.now - start).seconds
            if !quiet { Console.progress("") }
            let figures = try LabRecord.write(outcome, exercise: exercise, quick: quick, directory: directory)
            let answers = outcome.answers.keys.sorted().map { ($0, outcome.answers[$0]!) as (String, Any) }
            if solution {
                return Console.json([("answers", JSONObject(answers))] + (json ? [("directory", directory)] : []))
            }
            if json {
                return Console.json([("exercise", exercise.id), ("quick", quick), ("seconds", seconds), ("directory", directory),
                                     ("figures", figures), ("answers", JSONObject(answers))])
            }
            outcome.table.forEach(Console.out)
            outcome.notes.forEach { Console.out("note: " + $0) }
            Console.out(String(format: "\nran in %.0f s; record, table and figures in %@:", seconds, directory))
            figures.forEach { Console.out("  " + $0) }
            Console.out("check your predictions: fleet lab check \(exercise.id) --answers FILE")
        }
    }
}

struct LabCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Grade your answers: exit 0 when every one is within its tolerance, 1 otherwise.",
        discussion: "Closed-form and simulated answers are computed now; answers about your own measurements come from the newest `fleet lab run ID` (or --run DIR).")

    @Argument(help: "Exercise id (fleet lab list).")
    var id: String

    @Option(help: "A JSON file of your answers: {\"question-id\": number, …}.")
    var answers: String

    @Option(name: .customLong("run"), help: "The lab run whose measurements grade the measured questions (default: the newest runs/lab-ID-*).")
    var runDirectory: String?

    func validate() throws {
        do { _ = try LabCatalog.named(id) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        try Console.reportingErrors {
            let exercise = try LabCatalog.named(id)
            let given = try Self.read(answers)
            var reference = try exercise.solve()
            var source = "closed forms and the simulator"
            if exercise.questions.contains(where: \.measured), let recorded = try LabRecord.answers(of: id, directory: runDirectory) {
                for q in exercise.questions where q.measured { reference[q.id] = recorded.answers[q.id] }
                source += "; your measurements from \(recorded.directory)"
            }
            let grade = try Grade(exercise, answers: given, reference: reference)
            for line in grade.lines { Console.out("\(line.passed ? "pass" : "FAIL")  \(line.question): \(line.explanation)") }
            Console.out("\(grade.lines.filter(\.passed).count) of \(grade.lines.count) within tolerance (reference: \(source))")
            if !grade.passed { throw ExitCode(ExitStatus.verdict) }
        }
    }

    static func read(_ path: String) throws -> [String: Double] {
        guard let data = FileManager.default.contents(atPath: path) else { throw LabError("cannot read \(path): no such file (pass --answers FILE)") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw LabError("\(path) is not a JSON object; write {\"question-id\": number, …}")
        }
        // `fleet lab run ID --solution --json` prints {"answers": {…}}: accept that shape too.
        let answers = (object["answers"] as? [String: Any]) ?? object
        return try answers.mapValues { value in
            guard let number = value as? NSNumber else { throw LabError("\(path): answers must be numbers") }
            return number.doubleValue
        }
    }
}
