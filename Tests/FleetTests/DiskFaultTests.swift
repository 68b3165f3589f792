import Foundation
import XCTest

/// Disks that fill, refuse writes or lose a directory under a running `fleet train`: one line
/// naming the path and the cause, a distinct exit status, never a crash dump, and every
/// complete checkpoint still valid. Full and read-only file systems are real ones (a small
/// tmpfs, a read-only bind mount) in a mount namespace of the test's own.
final class DiskFaultTests: FleetProcessTestCase {
    static let short = ["train", "gpt-tiny", "--batch", "2", "--seq", "32", "--log-every", "1"]

    /// Runs fleet in a private mount namespace after `mount` (a shell command) prepared it;
    /// skips when this machine does not let the test mount (no CAP_SYS_ADMIN).
    func fleet(after mount: String, _ arguments: [String], timeout: Double = 120) throws -> FleetProcess.Outcome {
        let probe = try FleetProcess.run("/usr/bin/unshare", ["-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], environment: [:], timeout: 20)
        if probe.status != 0 { throw XCTSkip("cannot mount in a private namespace here (\(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))") }
        return try FleetProcess.run("/usr/bin/unshare", ["-m", "sh", "-c", "\(mount) && exec \"$0\" \"$@\"", FleetProcess.binary] + arguments,
                                    environment: [:], timeout: timeout)
    }

    func assertOneLineFailure(_ run: FleetProcess.Outcome, status: Int32, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(run.status, status, run.output, file: file, line: line)
        for text in mentions { XCTAssertTrue(run.stderr.contains(text), "'\(text)' in \(run.stderr)", file: file, line: line) }
        for dump in ["Fatal error", "Backtrac", "NSCocoaErrorDomain", "flight recorder"] {
            XCTAssertFalse(run.output.contains(dump), "\(dump) in \(run.output)", file: file, line: line)
        }
    }

    /// The run records' disk fills mid-run (two ranks): the run stops with the file and the
    /// cause; the checkpoints written elsewhere up to then verify and resume.
    func testFullDiskUnderTheRunRecords() throws {
        let records = directory + "/records", checkpoints = directory + "/ck"
        try FileManager.default.createDirectory(atPath: records, withIntermediateDirectories: true)
        let run = try fleet(after: "mount -t tmpfs -o size=48k tmpfs \(records)",
                            Self.short + ["--steps", "400", "--dp", "2", "--run-dir", records + "/run",
                                          "--checkpoint-dir", checkpoints, "--checkpoint-every", "5"])
        assertOneLineFailure(run, status: 3, mentions: ["No space left on device", records + "/run/"])
        let verify = try FleetProcess.fleet(["checkpoint", "verify", checkpoints])
        XCTAssertEqual(verify.status, 0, verify.output)
        XCTAssertTrue(verify.stdout.contains("ok "), verify.output)
    }

    /// A read-only checkpoint directory (or run directory) is refused before the first step.
    func testReadOnlyDirectoriesAreRefusedBeforeTraining() throws {
        let readOnly = directory + "/ro"
        try FileManager.default.createDirectory(atPath: readOnly + "/ck", withIntermediateDirectories: true)
        let mount = "mount --bind \(readOnly) \(readOnly) && mount -o remount,bind,ro \(readOnly)"
        let checkpoints = try fleet(after: mount, Self.short + ["--steps", "4", "--checkpoint-dir", readOnly + "/ck"])
        assertOneLineFailure(checkpoints, status: 2, mentions: ["--checkpoint-dir \(readOnly)/ck", "Read-only file system"])
        XCTAssertFalse(checkpoints.stdout.contains("step "), checkpoints.output)
        let runDirectory = try fleet(after: mount, Self.short + ["--steps", "4", "--dp", "2", "--run-dir", readOnly + "/run"])
        assertOneLineFailure(runDirectory, status: 2, mentions: ["--run-dir", "Read-only file system"])
    }

    /// The checkpoint disk fills: the save that did not fit fails the run with the path, and
    /// the checkpoint before it stays complete and valid.
    func testFullCheckpointDisk() throws {
        let disk = directory + "/disk"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        // gpt-tiny's checkpoint (weights and Adam moments) is ~10 MB: one fits in 16 MB, two do not.
        let run = try fleet(after: "mount -t tmpfs -o size=16M tmpfs \(disk)",
                            Self.short + ["--steps", "12", "--checkpoint-dir", disk + "/ck", "--checkpoint-every", "2"])
        assertOneLineFailure(run, status: 3, mentions: ["No space left on device", disk + "/ck/step-00000004"])
        XCTAssertTrue(run.stderr.contains("earlier checkpoints stay valid"), run.stderr)
    }

    /// The run directory is removed while the run writes to it (by hand, or a prune from another
    /// shell): every rank says which file went, instead of writing on into an unlinked file.
    func testRunDirectoryRemovedMidRun() throws {
        let runDirectory = directory + "/run"
        func steps() -> Int { ((try? String(contentsOfFile: runDirectory + "/rank-1.steps.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count }
        let (status, text) = try FleetProcess.interrupted(FleetProcess.binary, Self.short + ["--steps", "100000", "--dp", "2", "--run-dir", runDirectory],
                                                          output: directory + "/out.txt", ready: { _ in steps() >= 3 },
                                                          act: { _ in try FileManager.default.removeItem(atPath: runDirectory) },
                                                          stuck: "the run went on without its directory")
        XCTAssertEqual(status, 3, text)
        XCTAssertTrue(text.contains("was removed while the run was writing to it"), text)
        XCTAssertFalse(text.contains("Fatal error"), text)
    }
}
