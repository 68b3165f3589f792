import Foundation
import XCTest
@testable import Lab

/// Grading: fleet's own reference answers pass, wrong ones fail with what was off, and
/// every exercise answers its closed-form questions without a run.
final class GradingTests: XCTestCase {
    func testEveryExerciseIsComplete() throws {
        XCTAssertGreaterThanOrEqual(LabCatalog.all.count, 12)
        XCTAssertGreaterThanOrEqual(Set(LabCatalog.all.map(\.chapter)).count, 8)
        XCTAssertEqual(Set(LabCatalog.all.map(\.id)).count, LabCatalog.all.count, "ids are unique")
        for exercise in LabCatalog.all {
            XCTAssertFalse(exercise.questions.isEmpty, exercise.id)
            XCTAssertFalse(exercise.stretch.isEmpty, exercise.id)
            XCTAssertFalse(exercise.commands(quick: true).isEmpty, exercise.id)
            let solved = try exercise.solve()
            for q in exercise.questions where !q.measured {
                let value = try XCTUnwrap(solved[q.id], "\(exercise.id): \(q.id) has a closed form or a simulation")
                XCTAssertTrue(value.isFinite, "\(exercise.id): \(q.id) = \(value)")
            }
            XCTAssertTrue(exercise.questions.filter(\.measured).allSatisfy { solved[$0.id] == nil },
                          "\(exercise.id): measured answers come from a run only")
        }
    }

    func testReferenceAnswersPassAndWrongOnesFail() throws {
        for exercise in LabCatalog.all {
            var reference = try exercise.solve()
            for q in exercise.questions where q.measured { reference[q.id] = 1.0 }
            XCTAssertTrue(try Grade(exercise, answers: reference, reference: reference).passed, exercise.id)
            for q in exercise.questions {
                var wrong = reference
                let value = reference[q.id]!
                wrong[q.id] = value == 0 ? max(q.absolute, 1) * 10 : value * (1 + max(q.tolerance, 0.01) * 3) + q.absolute * 3
                let grade = try Grade(exercise, answers: wrong, reference: reference)
                XCTAssertFalse(grade.passed, "\(exercise.id): \(q.id) = \(wrong[q.id]!) against \(value)")
                let line = try XCTUnwrap(grade.lines.first { !$0.passed })
                XCTAssertEqual(line.question, q.id)
                XCTAssertTrue(line.explanation.contains("fleet computed"), line.explanation)
            }
            var missing = reference
            missing.removeValue(forKey: exercise.questions[0].id)
            XCTAssertFalse(try Grade(exercise, answers: missing, reference: reference).passed, exercise.id)
            XCTAssertThrowsError(try Grade(exercise, answers: reference.merging(["no-such-question": 1]) { a, _ in a }, reference: reference))
        }
    }
}
