import Foundation
import Tensor
import XCTest

/// Finite differences in Double over slow reference implementations: the oracle for every kernel's backward pass.
enum GradientCheck {
    /// Central differences of `f` at `x`.
    static func numerical(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
        var x = x
        return x.indices.map { i in
            let saved = x[i]
            x[i] = saved + h
            let plus = f(x)
            x[i] = saved - h
            let minus = f(x)
            x[i] = saved
            return (plus - minus) / (2 * h)
        }
    }

    static func assertClose(_ analytic: [Float], _ expected: [Double], tolerance: Double = 2e-3, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(analytic.count, expected.count, what, file: file, line: line)
        var worst = 0.0
        for (a, e) in zip(analytic, expected) {
            worst = max(worst, abs(Double(a) - e) / max(1, abs(e)))
        }
        XCTAssertLessThan(worst, tolerance, "\(what): worst relative error \(worst)", file: file, line: line)
    }

    static func random(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
        let rng = CounterRNG(seed: seed)
        return (0..<count).map { scale * (2 * rng.uniform(stream: 7, index: UInt64($0)) - 1) }
    }
}

extension Array where Element == Double {
    var floats: [Float] { map(Float.init) }
}

extension FloatBuffer {
    convenience init(doubles: [Double]) { self.init(doubles.map(Float.init)) }
}
