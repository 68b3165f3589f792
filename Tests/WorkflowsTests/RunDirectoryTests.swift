import Foundation
import Workflows
import XCTest

/// Run directories: unique names, listed newest first, pruned to the newest N, nothing else touched.
final class RunDirectoryTests: TemporaryDirectoryTestCase {
    func make(_ name: String, bytes: Int = 10) throws {
        try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
        try Data(repeating: 1, count: bytes).write(to: URL(fileURLWithPath: directory + "/" + name + "/rank-0.log"))
    }

    func testRunsAreListedNewestFirstAndPrunedToTheNewest() throws {
        for name in ["train-20261201-100000", "train-20261201-100000-2", "chaos-20261202-090000", "bench-checkpoint-20261130-080000"] {
            try make(name, bytes: 100)
        }
        try make("notes")                                   // not a run: never listed, never removed
        try Data().write(to: URL(fileURLWithPath: directory + "/train-20261203-000000"))   // a file, not a run
        let runs = RunDirectory.list(directory)
        XCTAssertEqual(runs.map { ($0.path as NSString).lastPathComponent },
                       ["chaos-20261202-090000", "train-20261201-100000-2", "train-20261201-100000", "bench-checkpoint-20261130-080000"])
        XCTAssertEqual(runs.map(\.kind), ["chaos", "train", "train", "bench-checkpoint"])
        XCTAssertEqual(runs.map(\.bytes), [100, 100, 100, 100])

        let wouldGo = try RunDirectory.prune(directory, keep: 0, dryRun: true)
        XCTAssertEqual(wouldGo.count, 4)
        XCTAssertEqual(RunDirectory.list(directory).count, 4, "a dry run removes nothing")

        let removed = try RunDirectory.prune(directory, keep: 1, kind: "train")
        XCTAssertEqual(removed.map { ($0.path as NSString).lastPathComponent }, ["train-20261201-100000"])
        XCTAssertEqual(RunDirectory.list(directory).map(\.kind), ["chaos", "train", "bench-checkpoint"])
        _ = try RunDirectory.prune(directory, keep: 1)
        XCTAssertEqual(RunDirectory.list(directory).map(\.kind), ["chaos"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/notes"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/train-20261203-000000"))
    }

    func testRunsStartedInOneSecondGetTheirOwnDirectories() throws {
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(directory)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let paths = try (0..<3).map { _ in try RunDirectory.create("train") }
        XCTAssertEqual(Set(paths).count, 3)
        XCTAssertEqual(RunDirectory.list("runs").count, 3)
    }

    /// A run in progress (its creator alive, holding the lock) is listed as running and never
    /// pruned; a finished one (the lock file left, nobody holding it) is pruned as usual.
    func testPruneLeavesRunsInProgress() throws {
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(directory)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        try make("runs/train-20200101-000000")
        FileManager.default.createFile(atPath: "runs/train-20200101-000000/.active", contents: nil)
        let live = try RunDirectory.create("train")
        let runs = RunDirectory.list("runs")
        XCTAssertEqual(runs.map(\.active), [true, false])
        let removed = try RunDirectory.prune("runs", keep: 0)
        XCTAssertEqual(removed.map(\.path), ["runs/train-20200101-000000"])
        XCTAssertEqual(RunDirectory.list("runs").map(\.path), [live])
    }
}
