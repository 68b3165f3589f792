import Foundation
import Tensor
import XCTest

/// Each kernel's forward against a Double reference, and its backward against finite differences of that reference.
final class KernelGradientTests: XCTestCase {
    func testLinear() {
        let (m, k, n) = (5, 7, 6)
        let x = GradientCheck.random(m * k, seed: 1), w = GradientCheck.random(n * k, seed: 2), b = GradientCheck.random(n, seed: 3)
        let r = GradientCheck.random(m * n, seed: 4)
        func reference(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            (0..<(m * n)).map { i in
                let row = i / n, col = i % n
                return b[col] + (0..<k).reduce(0) { $0 + x[row * k + $1] * w[col * k + $1] }
            }
        }
        func loss(_ out: [Double]) -> Double { zip(out, r).reduce(0) { $0 + $1.0 * $1.1 } }
        let out = FloatBuffer(count: m * n), bx = FloatBuffer(doubles: x), bw = FloatBuffer(doubles: w), bb = FloatBuffer(doubles: b)
        Linear.forward(out: out.pointer, inp: bx.pointer, weight: bw.pointer, bias: bb.pointer, m: m, k: k, n: n)
        GradientCheck.assertClose(out.array, reference(x, w, b), tolerance: 1e-5, "linear forward")
        let dx = FloatBuffer(count: m * k), dw = FloatBuffer(count: n * k), db = FloatBuffer(count: n), dout = FloatBuffer(doubles: r)
        Linear.backward(dinp: dx.pointer, dweight: dw.pointer, dbias: db.pointer, dout: dout.pointer, inp: bx.pointer,
                        weight: bw.pointer, m: m, k: k, n: n)
        GradientCheck.assertClose(dx.array, GradientCheck.numerical(x) { loss(reference($0, w, b)) }, "linear dx")
        GradientCheck.assertClose(dw.array, GradientCheck.numerical(w) { loss(reference(x, $0, b)) }, "linear dW")
        GradientCheck.assertClose(db.array, GradientCheck.numerical(b) { loss(reference(x, w, $0)) }, "linear db")
    }

    func testLayerNorm() {
        let (rows, c) = (4, 19)
        let x = GradientCheck.random(rows * c, seed: 5, scale: 2), w = GradientCheck.random(c, seed: 6), b = GradientCheck.random(c, seed: 7)
        let r = GradientCheck.random(rows * c, seed: 8)
        func reference(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            var out: [Double] = []
            for row in 0..<rows {
                let v = Array(x[(row * c)..<((row + 1) * c)])
                let mean = v.reduce(0, +) / Double(c)
                let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(c)
                let s = 1 / (variance + Double(LayerNorm.epsilon)).squareRoot()
                out += (0..<c).map { (v[$0] - mean) * s * w[$0] + b[$0] }
            }
            return out
        }
        func loss(_ out: [Double]) -> Double { zip(out, r).reduce(0) { $0 + $1.0 * $1.1 } }
        let out = FloatBuffer(count: rows * c), mean = FloatBuffer(count: rows), rstd = FloatBuffer(count: rows)
        let bx = FloatBuffer(doubles: x), bw = FloatBuffer(doubles: w), bb = FloatBuffer(doubles: b)
        LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: bx.pointer, weight: bw.pointer,
                          bias: bb.pointer, rows: rows, columns: c)
        GradientCheck.assertClose(out.array, reference(x, w, b), tolerance: 1e-5, "layernorm forward")
        let dx = FloatBuffer(count: rows * c), dw = FloatBuffer(count: c), db = FloatBuffer(count: c), dout = FloatBuffer(doubles: r)
        LayerNorm.backward(dinp: dx.pointer, dweight: dw.pointer, dbias: db.pointer, dout: dout.pointer, inp: bx.pointer,
                           weight: bw.pointer, mean: mean.pointer, rstd: rstd.pointer, rows: rows, columns: c)
        GradientCheck.assertClose(dx.array, GradientCheck.numerical(x) { loss(reference($0, w, b)) }, "layernorm dx")
        GradientCheck.assertClose(dw.array, GradientCheck.numerical(w) { loss(reference(x, $0, b)) }, "layernorm dw")
        GradientCheck.assertClose(db.array, GradientCheck.numerical(b) { loss(reference(x, w, $0)) }, "layernorm db")
    }

    func testGELU() {
        let x = GradientCheck.random(200, seed: 9, scale: 6) + [0, 1e-3, -1e-3, 0.1, -0.1, 0.13, -0.12]
        let r = GradientCheck.random(x.count, seed: 10)
        func reference(_ x: [Double]) -> [Double] {
            x.map { 0.5 * $0 * (1 + tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }
        }
        let out = FloatBuffer(count: x.count), bx = FloatBuffer(doubles: x), t = FloatBuffer(count: x.count)
        GELU.forward(out.pointer, bx.pointer, count: x.count, tanhOut: t.pointer)
        GradientCheck.assertClose(out.array, reference(x), tolerance: 1e-6, "gelu forward")
        let dx = FloatBuffer(count: x.count), dout = FloatBuffer(doubles: r)
        GELU.backward(dx.pointer, bx.pointer, tanh: t.pointer, dout.pointer, count: x.count)
        let expected = GradientCheck.numerical(x) { zip(reference($0), r).reduce(0) { $0 + $1.0 * $1.1 } }
        GradientCheck.assertClose(dx.array, expected, tolerance: 1e-4, "gelu dx")
    }

    func testCausalAttention() {
        let (b, t, c, heads) = (2, 5, 8, 2)
        let hs = c / heads
        let qkv = GradientCheck.random(b * t * 3 * c, seed: 11, scale: 1.5)
        let r = GradientCheck.random(b * t * c, seed: 12)
        func reference(_ qkv: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: b * t * c)
            for bi in 0..<b {
                for h in 0..<heads {
                    for i in 0..<t {
                        func at(_ pos: Int, _ part: Int, _ d: Int) -> Double { qkv[(bi * t + pos) * 3 * c + part * c + h * hs + d] }
                        let scores = (0...i).map { j in (0..<hs).reduce(0) { $0 + at(i, 0, $1) * at(j, 1, $1) } / Double(hs).squareRoot() }
                        let top = scores.max()!
                        let weights = scores.map { exp($0 - top) }
                        let total = weights.reduce(0, +)
                        for d in 0..<hs {
                            out[(bi * t + i) * c + h * hs + d] = (0...i).reduce(0) { $0 + weights[$1] / total * at($1, 2, d) }
                        }
                    }
                }
            }
            return out
        }
        let shape = Attention.Shape(batch: b, sequence: t, channels: c, heads: heads)
        let out = FloatBuffer(count: b * t * c), probabilities = FloatBuffer(count: b * heads * t * t), input = FloatBuffer(doubles: qkv)
        Attention.forward(out: out.pointer, probabilities: probabilities.pointer, qkv: input.pointer, shape: shape)
        GradientCheck.assertClose(out.array, reference(qkv), tolerance: 1e-5, "attention forward")
        let dqkv = FloatBuffer(count: qkv.count), dout = FloatBuffer(doubles: r), scratch = FloatBuffer(count: 4 * t * t)
        Attention.backward(dqkv: dqkv.pointer, dout: dout.pointer, qkv: input.pointer, probabilities: probabilities.pointer,
                           scratch: scratch.pointer, shape: shape)
        let expected = GradientCheck.numerical(qkv) { zip(reference($0), r).reduce(0) { $0 + $1.0 * $1.1 } }
        GradientCheck.assertClose(dqkv.array, expected, "attention dqkv")
    }

    func testCrossEntropy() {
        let (rows, v) = (6, 13)
        let logits = GradientCheck.random(rows * v, seed: 13, scale: 4)
        let targets: [Int32] = [0, 12, 5, 5, 3, 7]
        func reference(_ z: [Double]) -> Double {
            (0..<rows).reduce(0) { total, r in
                let row = Array(z[(r * v)..<((r + 1) * v)])
                let top = row.max()!
                return total + log(row.reduce(0) { $0 + exp($1 - top) }) + top - row[Int(targets[r])]
            } / Double(rows)
        }
        let buffer = FloatBuffer(doubles: logits), losses = FloatBuffer(count: rows)
        let loss = targets.withUnsafeBufferPointer {
            CrossEntropy.forwardBackward(logits: buffer.pointer, targets: $0.baseAddress!, losses: losses.pointer, rows: rows, vocabulary: v, gradient: true)
        }
        XCTAssertEqual(Double(loss), reference(logits), accuracy: 1e-5)
        GradientCheck.assertClose(buffer.array, GradientCheck.numerical(logits, reference), tolerance: 1e-4, "cross-entropy dlogits")
    }

    func testEmbedding() {
        let (b, t, c, v) = (2, 3, 4, 5)
        let tokens: [Int32] = [1, 4, 1, 0, 1, 3]
        let wte = GradientCheck.random(v * c, seed: 14), wpe = GradientCheck.random(t * c, seed: 15), r = GradientCheck.random(b * t * c, seed: 16)
        func reference(_ wte: [Double], _ wpe: [Double]) -> [Double] {
            (0..<(b * t * c)).map { i in wte[Int(tokens[i / c]) * c + i % c] + wpe[((i / c) % t) * c + i % c] }
        }
        func loss(_ out: [Double]) -> Double { zip(out, r).reduce(0) { $0 + $1.0 * $1.1 } }
        let out = FloatBuffer(count: b * t * c), bte = FloatBuffer(doubles: wte), bpe = FloatBuffer(doubles: wpe)
        let dte = FloatBuffer(count: v * c), dpe = FloatBuffer(count: t * c), dout = FloatBuffer(doubles: r)
        tokens.withUnsafeBufferPointer { tk in
            Embedding.forward(out: out.pointer, tokens: tk.baseAddress!, wte: bte.pointer, wpe: bpe.pointer, batch: b, sequence: t, channels: c)
            Embedding.backward(dwte: dte.pointer, dwpe: dpe.pointer, dout: dout.pointer, tokens: tk.baseAddress!, batch: b, sequence: t, channels: c)
        }
        GradientCheck.assertClose(out.array, reference(wte, wpe), tolerance: 1e-6, "embedding forward")
        GradientCheck.assertClose(dte.array, GradientCheck.numerical(wte) { loss(reference($0, wpe)) }, "embedding dwte")
        GradientCheck.assertClose(dpe.array, GradientCheck.numerical(wpe) { loss(reference(wte, $0)) }, "embedding dwpe")
    }
}
