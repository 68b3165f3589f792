import Foundation
import XCTest

/// `fleet lab` end to end through the binary: every exercise's quick run (real worker
/// processes where it has them), its files, and `check` accepting fleet's own answers and
/// rejecting a wrong one.
final class LabCommandTests: FleetProcessTestCase {
    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func exercises() throws -> [[String: Any]] {
        let list = try FleetProcess.fleet(["lab", "list", "--json"])
        XCTAssertEqual(list.status, 0, list.output)
        return try XCTUnwrap(json(list.stdout)["exercises"] as? [[String: Any]])
    }

    func testListAndShow() throws {
        let all = try exercises()
        XCTAssertGreaterThanOrEqual(all.count, 12)
        XCTAssertGreaterThanOrEqual(Set(all.compactMap { $0["chapter"] as? String }).count, 8)
        for e in all {
            for key in ["id", "chapter", "title", "minutes", "needs"] { XCTAssertNotNil(e[key], "\(key) in \(e)") }
            let id = try XCTUnwrap(e["id"] as? String)
            let show = try FleetProcess.fleet(["lab", "show", id])
            XCTAssertEqual(show.status, 0, show.output)
            for question in e["questions"] as? [String] ?? [] { XCTAssertTrue(show.stdout.contains(question + ":"), "\(id): \(question)") }
            XCTAssertTrue(show.stdout.contains("Stretch:") && show.stdout.contains("fleet "), show.stdout)
        }
        let unknown = try FleetProcess.fleet(["lab", "show", "no-such-exercise"])
        XCTAssertEqual(unknown.status, 2, unknown.output)
        XCTAssertTrue(unknown.stderr.contains("fleet lab list"), unknown.stderr)
    }

    func testEveryExerciseRunsQuickAndChecksItsOwnAnswers() throws {
        for e in try exercises() {
            let id = try XCTUnwrap(e["id"] as? String)
            let directory = directory + "/" + id
            let run = try FleetProcess.fleet(["lab", "run", id, "--quick", "--json", "--run-dir", directory], timeout: 300)
            XCTAssertEqual(run.status, 0, "\(id): \(run.output)")
            guard run.status == 0 else { continue }
            let outcome = try json(run.stdout)
            let answers = try XCTUnwrap(outcome["answers"] as? [String: Any], id)
            XCTAssertEqual(Set(answers.keys), Set(e["questions"] as? [String] ?? []), id)
            for figure in outcome["figures"] as? [String] ?? [] {
                let svg = try String(contentsOfFile: figure, encoding: .utf8)
                XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"), figure)
            }
            XCTAssertFalse((outcome["figures"] as? [String] ?? []).isEmpty, id)
            let record = try json(String(contentsOfFile: directory + "/record.json", encoding: .utf8))
            XCTAssertEqual(record["exercise"] as? String, id)

            let file = self.directory + "/\(id)-answers.json"
            try JSONSerialization.data(withJSONObject: answers).write(to: URL(fileURLWithPath: file))
            let right = try FleetProcess.fleet(["lab", "check", id, "--answers", file, "--run", directory])
            XCTAssertEqual(right.status, 0, "\(id): \(right.output)")

            var wrong = answers
            let first = try XCTUnwrap((e["questions"] as? [String])?.first)
            let value = (answers[first] as? NSNumber)?.doubleValue ?? 0
            wrong[first] = value == 0 ? 10 : value * 3
            try JSONSerialization.data(withJSONObject: wrong).write(to: URL(fileURLWithPath: file))
            let graded = try FleetProcess.fleet(["lab", "check", id, "--answers", file, "--run", directory])
            XCTAssertEqual(graded.status, 1, "\(id): \(graded.output)")
            XCTAssertTrue(graded.stdout.contains("FAIL  \(first)") && graded.stdout.contains("fleet computed"), graded.stdout)
        }
    }

    func testSolutionPrintsTheAnswersObject() throws {
        let run = try FleetProcess.fleet(["lab", "run", "pipeline-bubble", "--quick", "--solution", "--json", "--run-dir", directory + "/pb"], timeout: 300)
        XCTAssertEqual(run.status, 0, run.output)
        let answers = try XCTUnwrap(json(run.stdout)["answers"] as? [String: Any])
        XCTAssertEqual((answers["bubble-p4-m8"] as? NSNumber)?.doubleValue ?? 0, 3.0 / 11, accuracy: 1e-12)
    }
}
