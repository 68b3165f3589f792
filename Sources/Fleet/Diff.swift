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
        guard first.tensorNames == second.tensorNames else {
            Console.out("the runs train different models (their parameter tensors differ); nothing to compare")
            throw ExitCode(1)
        }
        let diff = RunDiff(first, second)
        var differ = false
        if let (x, y, tensors) = diff.firstDifference {
            differ = true
            Console.out("first difference at step \(x.step):")
            Console.out("  loss       \(compare(x.loss, y.loss))")
            Console.out("  grad norm  \(compare(x.gradientNorm, y.gradientNorm))")
            Console.out(tensors.first.map { "  parameters after the update: \(tensors.count) of \(first.tensorNames.count) tensors differ, first \($0)" }
                        ?? "  parameters after the update: identical")
        } else {
            Console.out("\(diff.commonSteps) common steps: losses, gradient norms and every parameter tensor's checksum are bitwise identical")
        }
        if first.steps.count != diff.commonSteps || second.steps.count != diff.commonSteps {
            Console.out("A recorded \(first.steps.count) steps, B \(second.steps.count); compared the \(diff.commonSteps) both recorded")
        }
        if let weights = try diff.weights() {
            if weights.differentModels {
                Console.out("final weights: different models")
                differ = true
            } else if let firstTensor = weights.differing.first {
                let worst = weights.differing.max { $0.largest < $1.largest }!
                Console.out("final weights: \(weights.differing.count) of \(weights.tensors) tensors differ; first \(firstTensor.name) "
                    + "(\(firstTensor.elements) elements), largest |Δ| \(worst.largest) in \(worst.name)")
                differ = true
            } else {
                Console.out("final weights: bitwise identical (\(weights.parameters.formatted()) parameters)")
            }
        } else {
            Console.out("final weights: not in both runs (a run writes them when it finishes)")
        }
        if differ { throw ExitCode(1) }
    }

    private func compare(_ x: Float, _ y: Float) -> String {
        if x.bitPattern == y.bitPattern { return "\(x) in both" }
        return "\(x) vs \(y) (Δ \(abs(x - y)))"
    }
}
