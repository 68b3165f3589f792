import ArgumentParser
import Foundation
import Training
import Workflows

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two training runs bit for bit and name the first step and tensor that differ.",
        discussion: """
        Each run directory is written by fleet train --run-dir DIR (self-launched workers get one under runs/).
        Exit status 0: identical; 1: they differ; 2: a run cannot be read (so a script can tell a verdict from a mistake).
        Example:
          fleet train gpt-tiny --deterministic --steps 50 --run-dir runs/one
          fleet train gpt-tiny --deterministic --steps 50 --tp 2 --pp 2 --run-dir runs/tp2pp2
          fleet diff runs/one runs/tp2pp2
        """)

    @Argument(help: "The first run directory.")
    var a: String

    @Argument(help: "The second run directory.")
    var b: String

    func run() throws {
        try Console.reportingErrors { try compareRuns() }
    }

    private func compareRuns() throws {
        let first: RunRecord, second: RunRecord
        do {
            first = try RunRecord(directory: a)
            second = try RunRecord(directory: b)
        } catch {
            Console.err("fleet: error: \(error)")
            throw ExitCode(2)
        }
        Console.out("A: \(a)  \(first.summary)")
        Console.out("B: \(b)  \(second.summary)")
        let (lines, differ) = try RunDiff(first, second).report()
        lines.forEach(Console.out)
        if differ { throw ExitCode(1) }
    }
}
