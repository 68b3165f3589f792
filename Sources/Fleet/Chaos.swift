import ArgumentParser
import Collectives
import FaultInjection
import Foundation
import Training

struct Chaos: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A fault campaign: a fault-free reference, then runs with random faults that must all recover bit for bit.",
        discussion: """
        Each run trains in deterministic mode with checkpoints, message checksums, replica comparison and restarts, and
        one random fault (crash, hang, NaN, bit flip, drop, corrupt, failed or torn checkpoint write, straggler, delay).
        A run passes when its final parameters are bitwise the reference's and every complete checkpoint verifies.
          fleet chaos gpt-tiny --dp 2 --pp 2 --runs 20 --seed 7
        """)

    @Argument(help: "Model to train.")
    var model: String = "gpt-tiny"

    @OptionGroup var layoutOptions: LayoutOptions

    @Option(help: "Faulty runs.")
    var runs: Int = 10

    @Option(help: "Seed of the fault draws.")
    var seed: UInt64 = 7

    @Option(help: "Steps per run.")
    var steps: Int = 20

    @Option(help: "Fault kinds to draw from, comma-separated.")
    var kinds: String = "crash,hang,nan,bitflip,drop,corrupt,duplicate,checkpoint,slow,delay"

    @Option(help: "Directory for the runs (kept for inspection).")
    var dir: String?

    func run() throws {
        try Console.reportingErrors {
            let layout = layoutOptions.layout
            let kinds = try self.kinds.split(separator: ",").map { name -> Fault.Kind in
                guard let kind = Fault.Kind(rawValue: String(name)) else { throw FleetError("unknown fault kind '\(name)' in --kinds") }
                return kind
            }
            guard runs > 0, steps >= 8 else { throw FleetError("--runs must be positive and --steps at least 8") }
            let directory = try dir ?? Train.newRunDirectory("chaos")
            let base = ["train", model, "--deterministic", "--steps", "\(steps)", "--seq", "64", "--eval-batches", "1", "--log-every", "1000",
                        "--dp", "\(layout.dp)", "--tp", "\(layout.tp)", "--pp", "\(layout.pp)", "--microbatches", "\(layout.microbatches)",
                        "--schedule", layout.schedule.rawValue]
            Console.out("fleet chaos \(model) \(layout) (\(layout.worldSize) ranks), \(runs) runs, seed \(seed); runs in \(directory)")
            let reference = try Self.fleet(base + ["--run-dir", directory + "/reference"])
            guard reference.status == 0 else { throw FleetError("the fault-free reference failed: \(reference.stderr)") }
            let referenceWeights = try WeightsFile.load(directory + "/reference/final.weights").model.parameters.array

            var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
            func draw(_ n: Int) -> Int {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((state >> 33) % UInt64(n))
            }
            let table = Table(columns: [("run", 4), ("fault", 46), ("detected", 30), ("detect s", 8), ("recovered", 9), ("lost", 5), ("ckpts", 6)])
            Console.out(table.header())
            var misses = 0
            for run in 1...runs {
                let kind = kinds[draw(kinds.count)], rank = draw(layout.worldSize), step = 3 + draw(steps - 5)
                var spec = "\(kind.rawValue):rank=\(rank),step=\(step)"
                switch kind {
                case .slow: spec = "slow:rank=\(rank),factor=4,steps=2-\(steps)"
                case .delay: spec = "delay:rank=\(rank),ms=20,steps=\(step)-\(step + 2)"
                case .bitflip: spec += [",target=gradient", ",target=parameter", ",target=parameter,bit=\(2 + draw(20))"][draw(3)]
                case .checkpoint: spec = "checkpoint:rank=\(rank),step=\(5 * (1 + draw(max(1, (steps - 1) / 5)))),mode=\(["full", "torn"][draw(2)])"
                default: break
                }
                let runDir = directory + "/run-\(run)"
                let outcome = try Self.fleet(base + ["--checkpoint-dir", runDir + "/ck", "--checkpoint-every", "5", "--max-restarts", "2",
                                                     "--timeout", "3", "--checksums", "--check-replicas", "1", "--inject", spec,
                                                     "--run-dir", runDir + "/run"])
                let text = outcome.stderr + outcome.stdout
                let failed = text.contains("fault report:")
                let detected: String
                if failed {
                    detected = Self.cause(text)
                } else if kind == .slow {
                    detected = text.contains("straggler: rank \(rank)") ? "straggler rank \(rank)" : "MISSED straggler"
                } else {
                    detected = "no effect on the result"
                }
                let weights = try? WeightsFile.load(runDir + "/run/final.weights").model.parameters.array
                // Bit for bit (== on floats would let -0 pass for 0 and fail NaN against NaN).
                let recovered = outcome.status == 0 && weights?.map(\.bitPattern) == referenceWeights.map(\.bitPattern)
                let checkpoints = CheckpointStore(directory: runDir + "/ck").complete()
                let intact = checkpoints.allSatisfy { (try? CheckpointStore.verify($0.path)) != nil }
                let lost = Self.number(after: "recomputed", in: text, before: true)
                let seconds = Self.decimal(after: "detected ", in: text)
                let missed = !recovered || !intact || detected.hasPrefix("MISSED")
                if missed { misses += 1 }
                Console.out(table.row(["\(run)", spec, detected, seconds.map { String(format: "%.2f", $0) } ?? "—",
                                       recovered ? "yes" : "NO", lost.map(String.init) ?? "0", intact ? "ok" : "BAD"]))
            }
            Console.out(misses == 0 ? "every run recovered bitwise and no checkpoint was damaged" : "\(misses) run(s) missed")
            if misses > 0 { throw ExitCode(1) }
        }
    }

    /// The first failure cause a run reported, shortened for the table.
    static func cause(_ text: String) -> String {
        let causes: [(String, String)] = [("was killed by signal", "process died"), ("exited with code 3", "process exited"),
                                         ("did not answer within", "deadline (silent rank)"), ("arrived corrupted", "message checksum"),
                                         ("arrived out of order", "message sequence number"),
                                         ("not finite", "non-finite gradient"), ("replicas hold different", "replica divergence"),
                                         ("no space left", "checkpoint write failed"), ("is incomplete", "torn checkpoint")]
        let found = causes.compactMap { key, name in text.range(of: key).map { ($0.lowerBound, name) } }
        return found.min { $0.0 < $1.0 }?.1 ?? "failure"
    }

    static func number(after marker: String, in text: String, before: Bool) -> Int? {
        guard let range = text.range(of: " step(s) " + marker) else { return nil }
        let digits = text[..<range.lowerBound].reversed().prefix { $0.isNumber }
        return Int(String(digits.reversed()))
    }

    static func decimal(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        return Double(text[range.upperBound...].prefix { "0123456789.".contains($0) })
    }

    /// Runs this fleet binary and returns its status and output.
    static func fleet(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try ChildProcess.fleet(arguments)
    }
}
