import Engine
import Parallelism
import Workload
import XCTest

/// The simulator prices sequence parallelism from the plan: its all-gather/reduce-scatter
/// pairs, its smaller pipeline messages and its activation memory (Korthikanti et al. 2022).
final class SequenceParallelPricingTests: XCTestCase {
    let link = Link(bandwidth: .gigabitsPerSecond(400), latency: SimTime(seconds: 1e-6))

    func scenario(_ layout: ParallelLayout, flash: Bool = true) -> Scenario {
        var s = Scenario(name: "llama", device: DeviceCatalog.h100, nodes: layout.worldSize, gpusPerNode: 1, topology: .singleSwitch,
                         scaleUp: link, scaleOut: link, model: ModelCatalog.llama8B, batch: 8 * layout.dp, sequence: 2048, layout: layout)
        s.zero = 1
        s.flashAttention = flash
        return s
    }

    /// Activations a layer: sbh(10 + 24/t + 5as/(ht)) without, sbh(34 + 5as/h)/t with sequence
    /// parallelism (2 bytes an element in the paper's form), for in-flight micro-batches alike.
    func testActivationMemoryTakesTheSequenceParallelForm() {
        for tp in [2, 4, 8] {
            for flash in [true, false] {
                let plain = StepSimulator(scenario: scenario(ParallelLayout(tp: tp, pp: 2, microbatches: 4), flash: flash)).run()
                let split = StepSimulator(scenario: scenario(ParallelLayout(tp: tp, pp: 2, microbatches: 4, sequenceParallel: true), flash: flash)).run()
                let model = ModelCatalog.llama8B, t = Double(tp)
                let attention = flash ? 0 : 5 * Double(model.heads) * 2048 / Double(model.dModel)
                let expected = ((34 + attention) / t) / (10 + (24 + attention) / t)
                XCTAssertEqual(split.memory.activations / plain.memory.activations, expected, accuracy: 1e-9, "tp \(tp), flash \(flash)")
                XCTAssertEqual(split.memory.weights, plain.memory.weights, "weights are the tensor split's")
            }
        }
    }

    /// On the tensor group's ring a reduce-scatter plus an all-gather is an all-reduce; the
    /// backward pass gathers each norm again for its weight gradient (Megatron-LM's choice, to
    /// keep only a shard of it), so a layer's 8 half-collectives become 10 (and two small
    /// all-reduces of the norms' gradients); pipeline messages carry 1/tp of each sequence.
    func testTrafficAndTimeFollowThePlan() {
        let plain = StepSimulator(scenario: scenario(ParallelLayout(tp: 2, pp: 2, microbatches: 4))).run()
        let split = StepSimulator(scenario: scenario(ParallelLayout(tp: 2, pp: 2, microbatches: 4, sequenceParallel: true))).run()
        XCTAssertEqual(split.stages.map(\.pipelineBytes.count).map { $0 * 2 }, plain.stages.map(\.pipelineBytes.count))
        for (stage, traffic) in split.stages.enumerated() {
            let program = StepProgram(plan: ShardPlan(model: ModelCatalog.llama8B, layout: ParallelLayout(tp: 2, pp: 2, microbatches: 4, sequenceParallel: true), zero: 1),
                                      rank: ParallelLayout(tp: 2, pp: 2).mesh.rank(dp: 0, tp: 0, pp: stage),
                                      options: StepOptions(batch: 8, sequence: 2048, bytesPerElement: 2, bucketBytes: 25_000_000))
            let tensor = program.ops.reduce(Bytes.zero) { sum, op in if case let .collective(_, .tensor, bytes) = op { return sum + bytes } else { return sum } }
            XCTAssertEqual(traffic.tensorParallelBytes, tensor, "stage \(stage)")
        }
        let ratio = split.breakdown.tensorParallel.seconds / plain.breakdown.tensorParallel.seconds
        XCTAssertEqual(ratio, 10.0 / 8.0, accuracy: 0.03, "tensor-parallel time \(split.breakdown.tensorParallel.seconds) vs \(plain.breakdown.tensorParallel.seconds)")
        XCTAssertGreaterThan(split.breakdown.tensorParallel.seconds, 0)
    }

    func testScenariosReadSequenceParallelismAndRefuseWhatCannotRunIt() throws {
        let good = try String(contentsOfFile: EngineTests.scenarios + "/gpt-tiny-local.yaml", encoding: .utf8)
        let from = "layout: {dp: 2, pp: 2, microbatches: 2, schedule: 1f1b}"
        let split = good.replacingOccurrences(of: from, with: "layout: {tp: 2, pp: 2, microbatches: 2, sequence_parallel: true}")
        XCTAssertNotEqual(split, good)
        XCTAssertEqual(try ScenarioReader(path: "s.yaml", text: split).read().base.layout,
                       ParallelLayout(tp: 2, pp: 2, microbatches: 2, sequenceParallel: true))
        let alone = good.replacingOccurrences(of: from, with: "layout: {dp: 4, microbatches: 2, sequence_parallel: true}")
        XCTAssertThrowsError(try ScenarioReader(path: "s.yaml", text: alone).read()) { XCTAssertTrue("\($0)".contains("--tp 2 or more"), "\($0)") }
        let notBool = good.replacingOccurrences(of: from, with: "layout: {tp: 2, pp: 2, microbatches: 2, sequence_parallel: yes please}")
        XCTAssertThrowsError(try ScenarioReader(path: "s.yaml", text: notBool).read()) { XCTAssertTrue("\($0)".contains("true or false"), "\($0)") }
    }
}
