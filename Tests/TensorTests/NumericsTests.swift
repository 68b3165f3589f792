import Foundation
import Tensor
import XCTest

final class NumericsTests: XCTestCase {
    func testFastExpAndTanhAreAccurate() {
        var worstExp = 0.0, worstTanh = 0.0
        for i in -4000...4000 {
            let x = Float(i) * 0.02
            worstExp = max(worstExp, abs(Double(FastMath.exp(x)) - exp(Double(x))) / exp(Double(x)))
            worstTanh = max(worstTanh, abs(Double(FastMath.tanh(x)) - tanh(Double(x))))
            let lanes = FastMath.exp(SIMD8<Float>(repeating: x))
            XCTAssertEqual(lanes[3].bitPattern, FastMath.exp(x).bitPattern, "vector and scalar exp must agree bitwise")
        }
        XCTAssertLessThan(worstExp, 5e-6)
        XCTAssertLessThan(worstTanh, 2e-6)
        XCTAssertEqual(FastMath.exp(-200), 0, accuracy: 1e-30)
    }

    func testReductionsMatchNaiveSums() {
        for n in [0, 1, 7, 8, 9, 31, 100] {
            let x = (0..<n).map { Float($0 % 11) - 5 }, y = (0..<n).map { Float($0 % 3) }
            x.withUnsafeBufferPointer { px in
                y.withUnsafeBufferPointer { py in
                    XCTAssertEqual(Reductions.sum(px.baseAddress!, count: n), x.reduce(0, +))
                    XCTAssertEqual(Reductions.dot(px.baseAddress!, py.baseAddress!, count: n), zip(x, y).reduce(0) { $0 + $1.0 * $1.1 })
                    if n > 0 { XCTAssertEqual(Reductions.maximum(px.baseAddress!, count: n), x.max()!) }
                }
            }
        }
    }

    func testAdamWStepMatchesTheFormula() {
        var adam = AdamW(weightDecay: 0.1)
        let p = FloatBuffer([1, -2]), g = FloatBuffer([0.5, 0.25]), m = FloatBuffer(count: 2), v = FloatBuffer(count: 2)
        adam.begin()
        adam.update(params: p.pointer, grads: g.pointer, m: m.pointer, v: v.pointer, count: 2, learningRate: 0.01, decay: true)
        // First step: m̂ = g, v̂ = g², so the update is lr·(sign(g) + wd·p) up to ε.
        XCTAssertEqual(p[0], 1 - 0.01 * (1 + 0.1 * 1), accuracy: 1e-6)
        XCTAssertEqual(p[1], -2 - 0.01 * (1 + 0.1 * -2), accuracy: 1e-6)
    }

    func testClippingScalesToTheMaximumNorm() {
        let g = FloatBuffer([3, 4])
        XCTAssertEqual(clipGradientNorm(g.pointer, count: 2, maxNorm: 1), 5)
        XCTAssertEqual(Double(g[0]), 0.6, accuracy: 1e-5)
        XCTAssertEqual(Double(g[1]), 0.8, accuracy: 1e-5)
    }

    func testScheduleWarmsUpThenDecaysToTheMinimum() {
        let s = LearningRateSchedule(peak: 1, warmupSteps: 10, totalSteps: 110)
        XCTAssertEqual(s.rate(at: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(at: 9), 1, accuracy: 1e-6)
        XCTAssertEqual(s.rate(at: 60), 0.55, accuracy: 1e-5)
        XCTAssertEqual(s.rate(at: 110), 0.1, accuracy: 1e-6)
    }

    func testCounterRNGIsKeyedNotSequential() {
        let rng = CounterRNG(seed: 42)
        let stream = CounterRNG.stream("h0.attn.qkv.w")
        // Drawing element 1000 alone gives what a full pass gives: sharding cannot change values.
        let all = (0..<2000).map { rng.normal(stream: stream, index: UInt64($0)) }
        XCTAssertEqual(rng.normal(stream: stream, index: 1000), all[1000])
        XCTAssertNotEqual(CounterRNG(seed: 43).normal(stream: stream, index: 1000), all[1000])
        XCTAssertNotEqual(rng.normal(stream: CounterRNG.stream("wte"), index: 1000), all[1000])
        let mean = all.reduce(0, +) / Float(all.count)
        let std = (all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(all.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.08)
        XCTAssertEqual(std, 1, accuracy: 0.08)
    }
}
