import ArgumentParser
import Foundation
import Training

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
        let names = first.tensorNames
        var differ = false
        // Steps are compared by number (both runs may have recorded different ranges).
        let theirs = Dictionary(uniqueKeysWithValues: second.steps.map { ($0.step, $0) })
        let pairs = first.steps.compactMap { mine in theirs[mine.step].map { (mine, $0) } }
        let common = pairs.count
        if let (x, y) = pairs.first(where: { !same($0.0, $0.1) }) {
            differ = true
            Console.out("first difference at step \(x.step):")
            Console.out("  loss       \(compare(x.loss, y.loss))")
            Console.out("  grad norm  \(compare(x.gradientNorm, y.gradientNorm))")
            let tensors = names.indices.filter { x.checksums[$0] != y.checksums[$0] }
            if let firstTensor = tensors.first {
                Console.out("  parameters after the update: \(tensors.count) of \(names.count) tensors differ, first \(names[firstTensor])")
            } else {
                Console.out("  parameters after the update: identical")
            }
        } else {
            Console.out("\(common) common steps: losses, gradient norms and every parameter tensor's checksum are bitwise identical")
        }
        if first.steps.count != common || second.steps.count != common {
            Console.out("A recorded \(first.steps.count) steps, B \(second.steps.count); compared the \(common) both recorded")
        }
        differ = try compareWeights() || differ
        if differ { throw ExitCode(1) }
    }

    private func same(_ x: RunRecord.Step, _ y: RunRecord.Step) -> Bool {
        x.loss.bitPattern == y.loss.bitPattern && x.gradientNorm.bitPattern == y.gradientNorm.bitPattern && x.checksums == y.checksums
    }

    private func compare(_ x: Float, _ y: Float) -> String {
        if x.bitPattern == y.bitPattern { return "\(x) in both" }
        return "\(x) vs \(y) (Δ \(abs(x - y)))"
    }

    /// Compares the final weights element by element; returns whether they differ.
    private func compareWeights() throws -> Bool {
        let pathA = a + "/final.weights", pathB = b + "/final.weights"
        guard FileManager.default.fileExists(atPath: pathA), FileManager.default.fileExists(atPath: pathB) else {
            Console.out("final weights: not in both runs (a run writes them when it finishes)")
            return false
        }
        let x = try WeightsFile.load(pathA).model, y = try WeightsFile.load(pathB).model
        guard x.layout.count == y.layout.count else {
            Console.out("final weights: different models")
            return true
        }
        var differing: [(name: String, elements: Int, largest: Float)] = []
        for entry in x.layout.entries {
            var elements = 0, largest: Float = 0
            for i in entry.offset..<(entry.offset + entry.count) where x.parameters[i].bitPattern != y.parameters[i].bitPattern {
                elements += 1
                largest = max(largest, abs(x.parameters[i] - y.parameters[i]))
            }
            if elements > 0 { differing.append((entry.name, elements, largest)) }
        }
        guard let firstTensor = differing.first else {
            Console.out("final weights: bitwise identical (\(x.layout.count.formatted()) parameters)")
            return false
        }
        let worst = differing.max { $0.largest < $1.largest }!
        Console.out("final weights: \(differing.count) of \(x.layout.entries.count) tensors differ; first \(firstTensor.name) "
            + "(\(firstTensor.elements) elements), largest |Δ| \(worst.largest) in \(worst.name)")
        return true
    }
}
