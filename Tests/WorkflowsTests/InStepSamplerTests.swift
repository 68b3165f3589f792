import Engine
import Parallelism
import Workflows
import Workload
import XCTest

/// calibrate's in-step factor: real training steps taken between the kernel rounds, each set
/// against the kernels of its own round (a slow minute then moves both, not the ratio).
final class InStepSamplerTests: XCTestCase {
    func testEachRoundsStepsAreSetAgainstThatRoundsKernels() throws {
        let model = ModelCatalog.gptTiny
        let stages = KernelWork.stages(model: model, layout: ParallelLayout(), batch: 2, sequence: model.context)[0]
        let work = stages.forward + stages.backward
        let shapes = Set(work.gemms.keys)
        let round = KernelCalibration(gemm: Dictionary(uniqueKeysWithValues: shapes.map { ($0, 50e9) }),
                                      perElement: Dictionary(uniqueKeysWithValues: ElementKernel.allCases.map { ($0, 1e-9) }), cores: 1)
        let sampler = try InStepSampler(model: model, batch: 2, rounds: 2)
        try sampler.sample(against: round)
        try sampler.sample(against: round.scaled(speed: 2))
        XCTAssertEqual(sampler.ratios.count, 8, "four steps a round")
        XCTAssertEqual(sampler.compute.count, 8)
        for (i, ratio) in sampler.ratios.enumerated() {
            let alone = (i < 4 ? round : round.scaled(speed: 2)).seconds(work)
            XCTAssertEqual(ratio * alone, sampler.compute[i], accuracy: sampler.compute[i] * 1e-12, "step \(i) over its own round's kernels")
            XCTAssertTrue(sampler.compute[i] > 0 && sampler.rest[i] >= 0)
        }
    }
}
