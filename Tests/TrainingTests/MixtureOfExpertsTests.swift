import Collectives
import Parallelism
import Tensor
import Training
import Workload
import XCTest

/// The mixture-of-experts block: routing against a counted reference, the whole model's
/// gradient against finite differences, every dp/pp layout against one process.
final class MixtureOfExpertsTests: XCTestCase {
    static let micro = ModelSpec(name: "micro-moe", vocabulary: 11, context: 6, layers: 2, heads: 2, kvHeads: 2, dModel: 8,
                                 mlpHidden: 16, gatedMLP: false, tiedEmbeddings: true, learnedPositions: true, biases: true,
                                 moe: MixtureOfExperts(experts: 4, topK: 2, expertHidden: 8, interval: 1, auxLossWeight: 0.1))

    /// gpt-tiny-moe with capacity for one balanced share per expert: some tokens are dropped.
    static var tinyDropping: ModelSpec {
        var spec = ModelCatalog.gptTinyMoE
        spec.moe?.capacityFactor = 1
        return spec
    }

    func testRoutingMatchesACountedReference() {
        var seed: UInt64 = 7
        func uniform() -> Float { seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return Float(seed >> 40) / Float(1 << 24) }
        let (experts, topK, sequence, sequences) = (8, 2, 16, 4), rows = sequence * sequences
        // Coarse values make ties, which go to the lower index.
        let logits = (0..<(rows * experts)).map { _ in Float(Int(uniform() * 6)) }
        for capacity in [sequence, 4, 1] {
            let routing = logits.withUnsafeBufferPointer {
                ExpertRouting(logits: $0.baseAddress!, rows: rows, experts: experts, topK: topK, sequence: sequence, capacity: capacity)
            }
            var counts = [Int](repeating: 0, count: experts), kept = [[Int]](repeating: [], count: experts), dropped = 0
            var chosen: [[Int]] = []
            for r in 0..<rows {
                let row = Array(logits[(r * experts)..<((r + 1) * experts)])
                chosen.append(Array((0..<experts).sorted { (row[$0], -$0) > (row[$1], -$1) }.prefix(topK)))
                for e in chosen[r] { counts[e] += 1 }
            }
            for s in 0..<sequences {
                var load = [Int](repeating: 0, count: experts)
                for j in 0..<topK {
                    for r in (s * sequence)..<((s + 1) * sequence) {
                        let e = chosen[r][j]
                        if load[e] < capacity { load[e] += 1; kept[e].append(r) } else { dropped += 1 }
                    }
                }
            }
            XCTAssertEqual(routing.chosen, chosen.flatMap { $0 }, "capacity \(capacity)")
            XCTAssertEqual(routing.chosenCounts, counts)
            XCTAssertEqual(routing.dropped, dropped)
            XCTAssertEqual(routing.assignments, rows * topK - dropped)
            for e in 0..<experts {
                XCTAssertEqual(Array(routing.rowOf[routing.starts[e]..<routing.starts[e + 1]]), kept[e].sorted(), "expert \(e)")
            }
            if capacity == 1 { XCTAssertGreaterThan(dropped, 0, "a capacity of one drops tokens") }
            for r in 0..<rows {
                let g = routing.gates[(r * topK)..<((r + 1) * topK)]
                XCTAssertEqual(g.reduce(0, +), 1, accuracy: 1e-6)
                XCTAssertGreaterThanOrEqual(g.first!, g.last!, "best first")
            }
        }
    }

    func testBalanceLossIsOneWhenRoutingIsEven() {
        // Equal logits: every probability is 1/E; ties send every token to experts 0 and 1, so fₑ = ½ for them.
        let (experts, sequence) = (4, 8)
        let logits = [Float](repeating: 0, count: sequence * experts)
        let routing = logits.withUnsafeBufferPointer {
            ExpertRouting(logits: $0.baseAddress!, rows: sequence, experts: experts, topK: 2, sequence: sequence, capacity: sequence)
        }
        // E · Σₑ fₑ · Pₑ = 4 · (½ · ¼ + ½ · ¼) = 1.
        XCTAssertEqual(routing.balanceLoss[0], 1, accuracy: 1e-6)
        XCTAssertEqual(routing.chosenCounts, [sequence, sequence, 0, 0])
    }

    func testMoEGradientMatchesFiniteDifferences() throws {
        for capacityFactor in [nil, 0.75] as [Double?] {
            var spec = Self.micro
            spec.moe?.capacityFactor = capacityFactor
            let model = GPT(spec: spec, seed: 5)
            for i in 0..<model.layout.count { model.parameters[i] *= 4 }
            let (b, t) = (2, 6)
            let tokens: [Int32] = (0..<(b * t)).map { Int32(($0 * 7 + 3) % 11) }
            let targets: [Int32] = (0..<(b * t)).map { Int32(($0 * 5 + 1) % 11) }
            model.zeroGradients()
            model.step(tokens: tokens, targets: targets, batch: b, sequence: t, backward: true)
            let analytic = model.gradients.array, routes = try XCTUnwrap(model.expertStatistics).chosen
            if capacityFactor != nil { XCTAssertGreaterThan(model.expertStatistics!.dropped.reduce(0, +), 0, "tokens were dropped") }
            // The loss the backward pass differentiates: cross-entropy plus the weighted balance loss.
            func loss() -> (Double, [[Int]]) {
                let ce = model.step(tokens: tokens, targets: targets, batch: b, sequence: t, backward: false)
                let stats = model.expertStatistics!
                return (Double(ce) + Double(stats.balanceLoss), stats.chosen)
            }
            var checked = 0, skipped = 0, worst = 0.0, worstName = ""
            for entry in model.layout.entries {
                for k in Set([0, entry.count / 3, entry.count / 2, entry.count - 1]) {
                    let i = entry.offset + k, saved = model.parameters[i], h: Float = 1e-3
                    model.parameters[i] = saved + h
                    let (plus, plusRoutes) = loss()
                    model.parameters[i] = saved - h
                    let (minus, minusRoutes) = loss()
                    model.parameters[i] = saved
                    // Finite differences hold only where the routing stays put.
                    guard plusRoutes == routes && minusRoutes == routes else { skipped += 1; continue }
                    let numeric = (plus - minus) / Double(2 * h)
                    let error = abs(numeric - Double(analytic[i])) / max(0.05, abs(numeric))
                    if error > worst { worst = error; worstName = "\(entry.name)[\(k)] analytic \(analytic[i]) numeric \(numeric)" }
                    checked += 1
                }
            }
            XCTAssertGreaterThan(checked, 150, "capacity \(String(describing: capacityFactor))")
            // A token near a tie between its second and third expert moves with most upstream parameters.
            XCTAssertLessThan(skipped, checked / 4, "capacity \(String(describing: capacityFactor)): \(skipped) of \(checked + skipped) moved the routing")
            XCTAssertLessThan(worst, 0.03, "capacity \(String(describing: capacityFactor)): " + worstName)
        }
    }

    func testExpertsLearnSomethingOfTheirOwn() throws {
        // Routed experts get gradient only from their tokens: an expert nobody chose has none.
        let model = GPT(spec: ModelCatalog.gptTinyMoE, seed: 1)
        let (b, t) = (2, 32)
        let tokens: [Int32] = (0..<(b * t)).map { Int32(($0 * 13 + 1) % 256) }
        model.zeroGradients()
        model.step(tokens: tokens, targets: tokens, batch: b, sequence: t, backward: true)
        let stats = try XCTUnwrap(model.expertStatistics)
        XCTAssertEqual(stats.layers, [1, 3])
        for (block, l) in stats.layers.enumerated() {
            XCTAssertEqual(stats.tokensPerExpert[block].reduce(0, +), b * t * 2)
            for e in 0..<8 {
                let entry = model.layout.entry("h\(l).moe.e\(e).fc.w")
                let norm = (entry.offset..<(entry.offset + entry.count)).reduce(Float(0)) { $0 + abs(model.gradients[$1]) }
                XCTAssertEqual(norm == 0, stats.tokensPerExpert[block][e] == 0, "layer \(l) expert \(e)")
            }
        }
    }

    func testDeterministicLayoutsAreBitwiseOneProcess() throws {
        try InProcessTraining.assertBitwiseOneProcess([ParallelLayout(dp: 2), ParallelLayout(pp: 2, microbatches: 4),
                                                       ParallelLayout(dp: 2, pp: 2, microbatches: 2, zeroStage: 3)],
                                                      model: ModelCatalog.gptTinyMoE)
        try InProcessTraining.assertBitwiseOneProcess([ParallelLayout(dp: 4)], model: Self.tinyDropping)
    }

    func testDefaultLayoutsAreCloseToOneProcess() throws {
        try InProcessTraining.assertCloseToOneProcess([ParallelLayout(dp: 2), ParallelLayout(pp: 2, microbatches: 2)],
                                                      model: ModelCatalog.gptTinyMoE)
    }

    /// The step's routing counts are the global batch's on every rank, whatever the layout.
    func testRoutingStatisticsAreTheGlobalBatchsInEveryLayout() throws {
        let configuration = InProcessTraining.configuration(deterministic: true, model: Self.tinyDropping)
        func firstStep(_ layout: ParallelLayout) throws -> [ExpertStatistics] {
            let results = LocalFabric.run(worldSize: layout.worldSize, timeout: .seconds(60)) { transport -> ExpertStatistics in
                let trainer = try DistributedTrainer(configuration: configuration, layout: layout, transport: transport, corpus: .builtIn())
                return try XCTUnwrap(try trainer.trainStep(0).experts)
            }
            return try results.map { try $0.get() }
        }
        let one = try XCTUnwrap(try firstStep(ParallelLayout()).first)
        XCTAssertEqual(one.layers, [1, 3])
        XCTAssertEqual(one.tokensPerExpert.map { $0.reduce(0, +) }, [8 * 64 * 2, 8 * 64 * 2], "every token's two choices")
        XCTAssertGreaterThan(one.dropped.reduce(0, +), 0, "capacity 1 drops some")
        XCTAssertGreaterThan(one.balanceLoss, 0)
        for layout in [ParallelLayout(dp: 2), ParallelLayout(pp: 2, microbatches: 4), ParallelLayout(dp: 2, pp: 2, microbatches: 2)] {
            for (rank, s) in try firstStep(layout).enumerated() {
                XCTAssertEqual(s.tokensPerExpert, one.tokensPerExpert, "\(layout) rank \(rank)")
                XCTAssertEqual(s.dropped, one.dropped, "\(layout) rank \(rank)")
                XCTAssertEqual(s.balanceLoss, one.balanceLoss, accuracy: 1e-6 * one.balanceLoss, "\(layout) rank \(rank)")
            }
        }
    }

    func testTensorParallelExpertsAreRefused() {
        let configuration = InProcessTraining.configuration(deterministic: false, model: ModelCatalog.gptTinyMoE)
        let results = LocalFabric.run(worldSize: 2, timeout: .seconds(30)) { transport in
            _ = try DistributedTrainer(configuration: configuration, layout: ParallelLayout(tp: 2), transport: transport, corpus: .builtIn())
        }
        for result in results {
            XCTAssertThrowsError(try result.get()) { error in
                XCTAssertTrue("\(error)".contains("not split by tensor parallelism") && "\(error)".contains("--dp"), "\(error)")
            }
        }
    }

    func testShapesHaveTheirPublishedSizes() {
        XCTAssertEqual(ParameterLayout(spec: ModelCatalog.gptTinyMoE).count, ModelCatalog.gptTinyMoE.parameterCount)
        XCTAssertEqual(ParameterLayout(spec: Self.micro).count, Self.micro.parameterCount)
        // Same FLOPs a token as gpt-tiny: top-2 of experts half the MLP's width.
        XCTAssertEqual(ModelCatalog.gptTinyMoE.forwardFLOPsPerToken, ModelCatalog.gptTiny.forwardFLOPsPerToken
                       + 2 * 2 * Double(128 * 8), accuracy: 1)
        let mixtral = ModelCatalog.mixtral8x7B, deepseek = ModelCatalog.deepseekV3Like
        XCTAssertEqual(Double(mixtral.parameterCount) / 1e9, 46.7, accuracy: 0.1)
        XCTAssertEqual(Double(mixtral.activeParameterCount) / 1e9, 12.9, accuracy: 0.1)
        XCTAssertEqual(Double(deepseek.parameterCount) / 1e9, 672, accuracy: 2)
        XCTAssertEqual(Double(deepseek.activeParameterCount) / 1e9, 38.7, accuracy: 0.5)
        XCTAssertEqual(deepseek.expertLayers, 58)
        XCTAssertEqual((0..<4).filter(ModelCatalog.gptTinyMoE.isExpertLayer), [1, 3])
    }
}
