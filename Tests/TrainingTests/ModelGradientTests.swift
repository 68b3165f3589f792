import Tensor
import Training
import Workload
import XCTest

/// The whole model's analytic gradient against finite differences of its loss, on a micro configuration.
final class ModelGradientTests: XCTestCase {
    static let micro = ModelSpec(name: "micro", vocabulary: 11, context: 6, layers: 2, heads: 2, kvHeads: 2, dModel: 8,
                                 mlpHidden: 16, gatedMLP: false, tiedEmbeddings: true, learnedPositions: true, biases: true)

    func testFullModelGradientMatchesFiniteDifferences() {
        let model = GPT(spec: Self.micro, seed: 3)
        // Larger weights than the GPT-2 initialisation, so every path carries a measurable gradient.
        for i in 0..<model.layout.count { model.parameters[i] *= 4 }
        let (b, t) = (2, 6)
        let tokens: [Int32] = (0..<(b * t)).map { Int32(($0 * 7 + 3) % 11) }
        let targets: [Int32] = (0..<(b * t)).map { Int32(($0 * 5 + 1) % 11) }
        model.zeroGradients()
        model.step(tokens: tokens, targets: targets, batch: b, sequence: t, backward: true)
        let analytic = model.gradients.array
        func loss() -> Double { Double(model.step(tokens: tokens, targets: targets, batch: b, sequence: t, backward: false)) }
        var checked = 0, worst = 0.0, worstName = ""
        for entry in model.layout.entries {
            for k in Set([0, entry.count / 2, entry.count - 1]) {
                let i = entry.offset + k
                let saved = model.parameters[i], h: Float = 2e-3
                model.parameters[i] = saved + h
                let plus = loss()
                model.parameters[i] = saved - h
                let minus = loss()
                model.parameters[i] = saved
                let numeric = (plus - minus) / Double(2 * h)
                let error = abs(numeric - Double(analytic[i])) / max(0.05, abs(numeric))
                if error > worst { worst = error; worstName = "\(entry.name)[\(k)] analytic \(analytic[i]) numeric \(numeric)" }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 60)
        XCTAssertLessThan(worst, 0.03, worstName)
    }

    func testParameterLayoutMatchesTheSpecsCount() {
        XCTAssertEqual(ParameterLayout(spec: ModelCatalog.gptTiny).count, 842_496)
        XCTAssertEqual(ModelCatalog.gptTiny.parameterCount, 842_496)
        XCTAssertEqual(ParameterLayout(spec: ModelCatalog.gptSmall).count, ModelCatalog.gptSmall.parameterCount)
        XCTAssertEqual(ParameterLayout(spec: Self.micro).count, Self.micro.parameterCount)
    }

    func testEveryOffsetMapsToTheParameterHoldingIt() {
        let layout = ParameterLayout(spec: Self.micro)
        for entry in layout.entries {
            for offset in [entry.offset, entry.offset + entry.count / 2, entry.offset + entry.count - 1] {
                XCTAssertEqual(layout.entry(containing: offset).name, entry.name, "offset \(offset)")
            }
        }
    }

    func testRealWorldShapesHaveTheirPublishedSizes() {
        XCTAssertEqual(Double(ModelCatalog.gpt3_175B.parameterCount) / 1e9, 175, accuracy: 1.5)
        XCTAssertEqual(Double(ModelCatalog.llama8B.parameterCount) / 1e9, 8.0, accuracy: 0.1)
        XCTAssertEqual(Double(ModelCatalog.llama70B.parameterCount) / 1e9, 70.6, accuracy: 0.5)
        XCTAssertEqual(Double(ModelCatalog.llama405B.parameterCount) / 1e9, 405.8, accuracy: 2)
    }
}
