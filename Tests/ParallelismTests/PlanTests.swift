import Parallelism
import Workload
import XCTest

final class PlanTests: XCTestCase {
    func testMeshCoordinatesAndGroupsPartitionTheWorld() {
        for (dp, tp, pp) in [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 1, 2), (1, 2, 2), (2, 2, 2), (3, 1, 4)] {
            let mesh = DeviceMesh(dp: dp, tp: tp, pp: pp)
            for rank in 0..<mesh.worldSize { XCTAssertEqual(mesh.rank(mesh.coordinates(of: rank)), rank) }
            for groups in [mesh.allDPGroups, mesh.allTPGroups, mesh.allPPGroups] {
                XCTAssertEqual(groups.flatMap { $0 }.sorted(), Array(0..<mesh.worldSize), "groups must partition the world")
            }
            XCTAssertEqual(mesh.allDPGroups.count, tp * pp)
            XCTAssertTrue(mesh.allTPGroups.allSatisfy { $0.count == tp })
            for rank in 0..<mesh.worldSize {
                if let next = mesh.nextStage(of: rank) { XCTAssertEqual(mesh.previousStage(of: next), rank) }
            }
        }
        // Tensor parallelism is innermost: neighbouring ranks share a tp group.
        XCTAssertEqual(DeviceMesh(dp: 2, tp: 2, pp: 2).tpGroup(of: 0), [0, 1])
        XCTAssertEqual(DeviceMesh(dp: 2, tp: 2, pp: 2).dpGroup(of: 0), [0, 2])
        XCTAssertEqual(DeviceMesh(dp: 2, tp: 2, pp: 2).ppGroup(of: 0), [0, 4])
    }

    func testSchedulesAreSoundWithTheTextbookBubble() throws {
        for kind in PipelineSchedule.Kind.allCases where kind != .interleaved {
            for stages in 1...6 {
                for microbatches in 1...12 {
                    let schedule = PipelineSchedule(kind: kind, stages: stages, microbatches: microbatches)
                    let report = try schedule.check()
                    XCTAssertEqual(report.bubbleFraction, report.idealBubbleFraction, accuracy: 1e-9, "\(kind) p=\(stages) m=\(microbatches)")
                    let expectedPeak = (0..<stages).map { kind == .gpipe ? microbatches : min(stages - $0, microbatches) }
                    XCTAssertEqual(report.peakInFlightActivations, expectedPeak, "\(kind) p=\(stages) m=\(microbatches)")
                }
            }
        }
    }

    func testCheckCatchesUnmatchedAndDeadlockedSchedules() {
        typealias A = PipelineSchedule.Action
        // Stage 1 waits for a gradient nobody sends.
        let unmatched = PipelineSchedule(kind: .gpipe, stages: 2, microbatches: 1, actions: [
            [.forward(microbatch: 0), .sendActivation(microbatch: 0, toStage: 1), .backward(microbatch: 0)],
            [.receiveActivation(microbatch: 0, fromStage: 0), .forward(microbatch: 0), .receiveGradient(microbatch: 0, fromStage: 0), .backward(microbatch: 0)],
        ])
        XCTAssertThrowsError(try unmatched.check()) { XCTAssertTrue("\($0)".contains("inconsistent"), "\($0)") }
        // Both stages receive before they send: every message matches, but nobody can start.
        let deadlocked = PipelineSchedule(kind: .gpipe, stages: 2, microbatches: 1, actions: [
            [.receiveGradient(microbatch: 0, fromStage: 1), .forward(microbatch: 0), .sendActivation(microbatch: 0, toStage: 1), .backward(microbatch: 0)],
            [.receiveActivation(microbatch: 0, fromStage: 0), .forward(microbatch: 0), .sendGradient(microbatch: 0, toStage: 0), .backward(microbatch: 0)],
        ] as [[A]])
        XCTAssertThrowsError(try deadlocked.check()) { XCTAssertTrue("\($0)".contains("deadlock"), "\($0)") }
    }

    func testLayoutValidationNamesTheProblem() {
        let tiny = ModelCatalog.gptTiny
        func reason(_ layout: ParallelLayout, batch: Int = 8, world: Int? = nil) -> String {
            do { try layout.validate(model: tiny, batch: batch, worldSize: world); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(reason(ParallelLayout(dp: 2, pp: 2, microbatches: 2), world: 4), "")
        XCTAssertTrue(reason(ParallelLayout(dp: 2, pp: 2), world: 3).contains("= 4, but this run has 3 ranks"))
        XCTAssertTrue(reason(ParallelLayout(tp: 3)).contains("4 attention heads, which --tp 3 does not divide"))
        XCTAssertTrue(reason(ParallelLayout(pp: 5)).contains("more pipeline stages than gpt-tiny has layers (4)"))
        XCTAssertTrue(reason(ParallelLayout(dp: 2, microbatches: 3)).contains("3 micro-batches do not divide"))
        XCTAssertTrue(reason(ParallelLayout(dp: 3)).contains("not divisible by --dp 3"))
        XCTAssertEqual(ParallelLayout(pp: 3).stageLayers(model: tiny), [[0..<2], [2..<3], [3..<4]])
    }

    func testReductionTreeNodesParentsAndAlignment() {
        let tree = ReductionTree(leaves: 8)
        XCTAssertEqual(tree.children(of: 0..<8)?.left, 0..<4)
        XCTAssertEqual(tree.parent(of: 4..<6), 4..<8)
        XCTAssertNil(tree.parent(of: 0..<8))
        XCTAssertNil(tree.parent(of: 1..<3), "not a node")
        XCTAssertTrue(tree.contains(node: 6..<7))
        XCTAssertFalse(tree.contains(node: 2..<6))
        XCTAssertEqual((1...8).filter { tree.isAligned(parts: $0) }, [1, 2, 4, 8])
        // Six heads split 1, 2, 3 or 6 ways; the tree halves 6 into 3 + 3, then 3 into 1 + 2.
        let heads = ReductionTree(leaves: 6)
        XCTAssertEqual((1...6).filter { heads.isAligned(parts: $0) }, [1, 2, 6])
        XCTAssertEqual(heads.children(of: 3..<6)?.right, 4..<6)
    }
}
