import Foundation
import XCTest

/// `--deterministic`: every layout, over MPI and over ZeroMQ, reproduces the single-process
/// run bit for bit — per-step losses, gradient norms, every parameter tensor after every
/// step, and the final weights — and `fleet diff` names the first step and tensor where a
/// changed summation order breaks that.
final class DeterministicTrainingTests: FleetProcessTestCase {
    static let tiny = ["train", "gpt-tiny", "--deterministic", "--steps", "50", "--json", "--eval-batches", "2"]
    /// GPipe and 1F1B for every pipelined layout, and interleaved 1F1B.
    static let layouts: [[String]] = [
        ["--dp", "2"], ["--dp", "4"], ["--tp", "2"], ["--tp", "4"], ["--pp", "2"], ["--pp", "4"],
        ["--dp", "2", "--tp", "2"], ["--dp", "2", "--pp", "2"], ["--tp", "2", "--pp", "2"],
        ["--pp", "2", "--schedule", "gpipe"], ["--pp", "4", "--schedule", "gpipe", "--microbatches", "8"],
        ["--dp", "2", "--pp", "2", "--schedule", "gpipe"], ["--tp", "2", "--pp", "2", "--schedule", "gpipe"],
        ["--pp", "2", "--schedule", "interleaved", "--microbatches", "4"],
        ["--dp", "2", "--pp", "2", "--schedule", "interleaved", "--virtual-stages", "2", "--microbatches", "2"],
    ]
    /// The JSON step lines, without the timing fields (which differ from run to run).
    private func steps(_ outcome: FleetProcess.Outcome) -> [String] {
        outcome.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"step\"") }.map { line in
            String(line[..<(line.range(of: ",\"tokens_per_s\"")?.lowerBound ?? line.endIndex)])
        }
    }

    private func ranks(_ layout: [String]) -> Int { FleetProcess.ranks(of: layout) }

    /// Runs the reference in one process, then each layout, and requires identical bits.
    private func assertBitwiseEqual(_ base: [String], layouts: [[String]], mpi: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = directory + "/reference-\(base[1])"
        let one = try FleetProcess.fleet(base + ["--run-dir", reference])
        XCTAssertEqual(one.status, 0, one.output, file: file, line: line)
        let expected = steps(one)
        XCTAssertEqual(expected.count, Int(base[base.firstIndex(of: "--steps")! + 1]), one.output, file: file, line: line)
        for layout in layouts {
            let name = "\(base[1]) \(layout.joined(separator: " ")) over \(mpi ? "MPI" : "ZeroMQ")"
            let run = directory + "/\(base[1])\(layout.joined())\(mpi)"
            let arguments = base + layout + ["--run-dir", run]
            let outcome = mpi ? try FleetProcess.mpirun(ranks(layout), arguments) : try FleetProcess.fleet(arguments + ["--transport", "zmq"])
            XCTAssertEqual(outcome.status, 0, "\(name): \(outcome.output)", file: file, line: line)
            let measured = steps(outcome)
            XCTAssertEqual(measured.count, expected.count, "\(name): \(outcome.output)", file: file, line: line)
            if let step = zip(measured, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
                XCTFail("\(name): step \(step + 1) differs: \(measured[step]) vs \(expected[step])", file: file, line: line)
            }
            // Every parameter tensor after every step, and the final weights, bit for bit.
            let diff = try FleetProcess.fleet(["diff", reference, run])
            XCTAssertEqual(diff.status, 0, "\(name): \(diff.output)", file: file, line: line)
            XCTAssertTrue(diff.stdout.contains("final weights: bitwise identical"), "\(name): \(diff.output)", file: file, line: line)
        }
    }

    func testEveryLayoutIsBitwiseTheSingleProcessRunOverMPI() throws {
        try assertBitwiseEqual(Self.tiny, layouts: Self.layouts, mpi: true)
    }

    func testEveryLayoutIsBitwiseTheSingleProcessRunOverZeroMQ() throws {
        try assertBitwiseEqual(Self.tiny, layouts: Self.layouts, mpi: false)
    }

    /// ZeRO changes what each rank holds, never a bit: its update is elementwise and its gathers copy.
    func testZeROLayoutsAreBitwiseTheSingleProcessRun() throws {
        try assertBitwiseEqual(Self.tiny, layouts: [["--dp", "2", "--zero", "1"], ["--dp", "2", "--pp", "2", "--zero", "3"],
                                                    ["--dp", "2", "--tp", "2", "--zero", "2"]], mpi: true)
        try assertBitwiseEqual(Self.tiny, layouts: [["--dp", "4", "--zero", "3"]], mpi: false)
    }

    /// Sequence parallelism: ordered reduce-scatters, and norms' gradients summed over positions in tree order.
    func testSequenceParallelLayoutsAreBitwiseTheSingleProcessRun() throws {
        try assertBitwiseEqual(Self.tiny, layouts: [["--tp", "2", "--sequence-parallel"], ["--dp", "2", "--tp", "2", "--sequence-parallel"]], mpi: true)
        try assertBitwiseEqual(Self.tiny, layouts: [["--tp", "2", "--pp", "2", "--sequence-parallel"]], mpi: false)
    }

    /// Context parallelism: ring attention's rows as one process forms them, every sum over a
    /// sequence's positions formed on whole sequences of each rank's samples.
    func testContextParallelLayoutsAreBitwiseTheSingleProcessRun() throws {
        try assertBitwiseEqual(Self.tiny, layouts: [["--dp", "2", "--cp", "2"], ["--dp", "4", "--cp", "2", "--cp-balance"],
                                                    ["--dp", "2", "--tp", "2", "--cp", "2"]], mpi: true)
        try assertBitwiseEqual(Self.tiny, layouts: [["--dp", "2", "--cp", "2", "--cp-balance"], ["--dp", "2", "--pp", "2", "--cp", "2"]], mpi: false)
    }

    /// Mixture of experts: routing per token and per sequence, experts' gradients per sample in tree order;
    /// under expert parallelism the tokens cross the group by all-to-all and each expert's gradient is
    /// joined from its members' micro-batch nodes.
    func testMixtureOfExpertsLayoutsAreBitwiseTheSingleProcessRun() throws {
        let moe = ["train", "gpt-tiny-moe", "--deterministic", "--steps", "20", "--json", "--eval-batches", "2"]
        try assertBitwiseEqual(moe, layouts: [["--dp", "2"], ["--dp", "2", "--pp", "2"], ["--dp", "2", "--ep", "2"], ["--dp", "4", "--ep", "2"]], mpi: true)
        try assertBitwiseEqual(moe, layouts: [["--dp", "2", "--ep", "2"], ["--dp", "2", "--pp", "2", "--zero", "3"], ["--dp", "4", "--ep", "2", "--zero", "2"]], mpi: false)
    }

    func testGPTSmallLayoutsAreBitwiseTheSingleProcessRun() throws {
        let small = ["train", "gpt-small", "--deterministic", "--steps", "50", "--batch", "4", "--seq", "64", "--json", "--eval-batches", "1"]
        try assertBitwiseEqual(small, layouts: [["--dp", "2"], ["--tp", "2", "--pp", "2"]], mpi: true)
        try assertBitwiseEqual(small, layouts: [["--pp", "3", "--microbatches", "2"]], mpi: false)
    }

    /// The check can fail: a left-to-right sum of per-sample gradients (a test-only switch)
    /// breaks the equality, and fleet diff names the first step and tensor that differ.
    func testAPerturbedReductionOrderIsCaughtAndLocated() throws {
        let base = ["train", "gpt-tiny", "--deterministic", "--steps", "5", "--json", "--eval-batches", "1"]
        let reference = directory + "/reference", perturbed = directory + "/perturbed"
        XCTAssertEqual(try FleetProcess.fleet(base + ["--run-dir", reference]).status, 0)
        let outcome = try FleetProcess.fleet(base + ["--dp", "2", "--run-dir", perturbed], environment: ["FLEET_TEST_PERTURB_REDUCTION": "1"])
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let diff = try FleetProcess.fleet(["diff", reference, perturbed])
        XCTAssertEqual(diff.status, 1, diff.output)
        XCTAssertTrue(diff.stdout.contains("first difference at step 1:"), diff.output)
        XCTAssertTrue(diff.stdout.contains("tensors differ, first "), diff.output)
        XCTAssertTrue(diff.stdout.contains("final weights:") && diff.stdout.contains("tensors differ; first "), diff.output)
        // Without --deterministic the orders depend on the layout, and fleet diff says where.
        let loose = directory + "/loose"
        XCTAssertEqual(try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "5", "--eval-batches", "1", "--tp", "2", "--run-dir", loose]).status, 0)
        XCTAssertEqual(try FleetProcess.fleet(["diff", reference, loose]).status, 1)
    }

    func testLayoutsThatCannotBeExactAreRejectedWithWhatToChange() throws {
        let cases: [([String], String)] = [
            (["gpt-small", "--tp", "3"], "cannot split gpt-small's 6 heads exactly over --tp 3"),
            (["gpt-tiny", "--batch", "6", "--dp", "3"], "cannot split a batch of 6 sequences exactly over --dp 3"),
            (["gpt-tiny", "--batch", "12", "--pp", "2", "--microbatches", "3"], "into 3 micro-batches exactly"),
        ]
        for (arguments, message) in cases {
            let outcome = try FleetProcess.fleet(["train"] + arguments + ["--deterministic", "--steps", "2"])
            XCTAssertNotEqual(outcome.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(outcome.stderr.contains(message), "\(arguments): \(outcome.output)")
            XCTAssertFalse(outcome.stdout.contains("step "), "no step may run: \(outcome.output)")
        }
    }

    func testDiffExplainsMissingRunsClearly() throws {
        let outcome = try FleetProcess.fleet(["diff", directory + "/nothing", directory + "/none"])
        XCTAssertEqual(outcome.status, 2, "a run that cannot be read is not a verdict that runs differ")
        XCTAssertTrue(outcome.stderr.contains("has no readable run.json"), outcome.output)
    }
}
