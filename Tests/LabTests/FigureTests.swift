import Foundation
import XCTest
@testable import Lab
import Workflows

/// Figures a student opens must be legible: every label inside the canvas, rotated ones too.
final class FigureTests: XCTestCase {
    /// Each `<text>`'s estimated box (anchor, rotation) must lie inside the SVG's width and height.
    static func labelsOutsideCanvas(_ svg: String) -> [String] {
        func number(_ name: String, in tag: String) -> Double? {
            guard let range = tag.range(of: "\(name)=\"") else { return nil }
            return Double(tag[range.upperBound...].prefix { $0 != "\"" })
        }
        guard let root = svg.components(separatedBy: ">").first, let width = number("width", in: root), let height = number("height", in: root) else {
            return ["no canvas size"]
        }
        var outside: [String] = []
        for piece in svg.components(separatedBy: "<text").dropFirst() {
            guard let close = piece.firstIndex(of: ">"), let end = piece.range(of: "</text>") else { continue }
            let tag = String(piece[..<close]), text = String(piece[piece.index(after: close)..<end.lowerBound])
            guard let x = number("x", in: tag), let y = number("y", in: tag) else { continue }
            let length = SVGChart.textWidth(text) * (tag.contains("font-size=\"14\"") ? 14.0 / 11 : 1)
            let anchor = tag.contains("text-anchor=\"end\"") ? 1.0 : tag.contains("text-anchor=\"middle\"") ? 0.5 : 0
            var angle = 0.0
            if let r = tag.range(of: "rotate(") { angle = Double(tag[r.upperBound...].prefix { $0 != " " && $0 != ")" }) ?? 0 }
            let c = cos(angle * .pi / 180), s = sin(angle * .pi / 180)
            let ends = [(-anchor * length, 0.0), ((1 - anchor) * length, 0.0)].map { (x + $0.0 * c, y + $0.0 * s) }
            for (px, py) in ends where px < -1 || px > width + 1 || py < -1 || py > height + 1 {
                outside.append("'\(text)' reaches (\(Int(px)), \(Int(py))) on a \(Int(width))×\(Int(height)) canvas")
            }
        }
        return outside
    }

    func testTheCheckerSeesALabelCutOff() {
        let cut = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"100\">\n<text x=\"30\" y=\"90\" text-anchor=\"end\" transform=\"rotate(-35 30 90)\">a long rotated label</text>\n</svg>\n"
        XCTAssertEqual(Self.labelsOutsideCanvas(cut).count, 1)
    }

    func testLongRotatedBarLabelsStayInside() {
        let svg = SVGChart.bars(title: "goodput per checkpoint interval", unit: "goodput",
                                [("dp128 tp8 pp16 interleaved checkpoint 30 min", 0.8), ("b", 0.5), ("another fairly long label here", 0.2)])
        XCTAssertEqual(Self.labelsOutsideCanvas(svg), [])
    }

    func testSimulatedExercisesRunAndTheirFiguresAreLegible() throws {
        let directory = NSTemporaryDirectory() + "fleet-lab-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for exercise in LabCatalog.all where exercise.needs.hasPrefix("simulator") {
            let outcome = try exercise.run(LabSettings(quick: true, directory: directory))
            XCTAssertFalse(outcome.table.isEmpty, exercise.id)
            XCTAssertFalse(outcome.figures.isEmpty, exercise.id)
            for figure in outcome.figures { XCTAssertEqual(Self.labelsOutsideCanvas(figure.svg), [], "\(exercise.id) \(figure.name)") }
            let solved = try exercise.solve()
            for (id, value) in solved { XCTAssertEqual(outcome.answers[id], value, "\(exercise.id): \(id) from the run and from solve()") }
        }
    }

    /// The uneven fleet the exercise embeds is the shipped scenario's, comments aside.
    func testTheUnevenFleetIsTheShippedScenario() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scenarios/llama-70b-asymmetric.yaml").path
        let shipped = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        XCTAssertEqual(UnevenFleet.yaml.split(separator: "\n"), shipped)
    }

    /// Closed forms the exercises teach, held to the values fleet computes.
    func testClosedFormsMatchTheTextbook() throws {
        let pipeline = try PipelineBubble().solve()
        XCTAssertEqual(pipeline["bubble-p4-m8"]!, 3.0 / 11, accuracy: 1e-12)
        XCTAssertEqual(pipeline["bubble-p2-m4"]!, 1.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(pipeline["inflight-gpipe-p4-m8"], 8)
        XCTAssertEqual(pipeline["inflight-1f1b-p4-m8"], 4)
        let ring = try RingAllReduce().solve()
        XCTAssertEqual(ring["sent-bytes"], 96 * 1024 * 1024)
        let young = try YoungDaly().solve()
        XCTAssertEqual(young["mtbf-hours"]!, 3.69, accuracy: 0.05)
        XCTAssertEqual(try Determinism().solve()["float-gap"], 1)
        let uneven = try UnevenFleet().solve()
        XCTAssertEqual(uneven["slow-stage-ratio"]!, 55.0 / 33, accuracy: 1e-12)
        XCTAssertEqual(uneven["half-nic-ring-ratio"]!, 2, accuracy: 1e-9)
        XCTAssertGreaterThan(uneven["a100-share"]!, 0.5, "the older GPUs dominate the uneven fleet")
        let interleaved = try InterleavedPipeline().solve()
        XCTAssertEqual(interleaved["bubble-interleaved-p4-m8-v2"]!, 3.0 / 19, accuracy: 1e-12)
        XCTAssertEqual(interleaved["message-ratio-p4-v2"]!, 7.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(interleaved["activation-ratio-p4-m8-v2"]!, 11.0 / 2 / 4, accuracy: 1e-12)
        let sharding = try ZeROSharding().solve()
        XCTAssertEqual(sharding["state-ratio-zero1-dp4"]!, 10.0 / 16, accuracy: 1e-3)
        XCTAssertEqual(sharding["state-ratio-zero2-dp4"]!, 7.0 / 16, accuracy: 1e-3)
        XCTAssertEqual(sharding["state-ratio-zero3-dp4"]!, 4.0 / 16, accuracy: 1e-3)
        XCTAssertEqual(sharding["gathers-per-step-zero3"]!, 8, "4 forward and 4 backward passes")
        let sequence = try SequenceParallel().solve()
        XCTAssertEqual(sequence["activation-ratio-llama70b-tp8"]!, (34.0 / 8) / (10 + 24.0 / 8), accuracy: 1e-9)
        XCTAssertEqual(sequence["tensor-collectives-per-layer"], 12)
        XCTAssertEqual(sequence["message-ratio-tp2"], 0.5)
        let zero = try ZeROMemory().solve()
        XCTAssertEqual(zero["optimizer-gb-zero1"]! * 16, zero["optimizer-gb-zero0"]!, accuracy: zero["optimizer-gb-zero0"]! * 0.02)
    }
}
