import Parallelism
import Engine
import Tensor
import Workload

/// Times the trainer's kernels on this CPU, one thread, at the model's dimensions: sgemm per
/// product shape (FLOP/s) and every other kernel per element (seconds).
public struct KernelBenchmark {
    public let model: ModelSpec
    public let sequence: Int
    public let repeats: Int

    /// FLOP/s of one product shape, filled with non-trivial values.
    public func gemm(_ shape: GEMMShape) -> Measurement { gemmTimer(shape)() }

    /// A timer of `shape`'s FLOP/s whose buffers are made and filled once (a probe that times
    /// the same shapes round after round fills them once, not every round).
    public func gemmTimer(_ shape: GEMMShape) -> () -> Measurement {
        let a = filled(shape.m * shape.k), b = filled(shape.k * shape.n), c = FloatBuffer(count: shape.m * shape.n)
        let lda = shape.transA ? shape.m : shape.k, ldb = shape.transB ? shape.k : shape.n
        return { [repeats] in
            let time = Measurement.seconds(repeats: repeats) {
                BLAS.gemm(transA: shape.transA, transB: shape.transB, m: shape.m, n: shape.n, k: shape.k,
                          a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: c.pointer, ldc: shape.n)
            }
            return rate(shape.flops.count, time)
        }
    }

    /// Seconds per element of `kernel` at a micro-batch of 4 sequences.
    public func element(_ kernel: ElementKernel) -> Measurement {
        let batch = 4, t = sequence, rows = batch * t, c = model.dModel, h = model.mlpHidden, v = model.vocabulary
        let x = filled(rows * max(c, h, v)), y = filled(rows * max(c, h, v)), z = filled(rows * max(c, h, v))
        let w = filled(max(c, v * c)), bias = filled(max(c, h)), mean = filled(rows), rstd = FloatBuffer(count: rows)
        for i in 0..<rows { rstd[i] = 1 }
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: rows)
        defer { tokens.deallocate() }
        for i in 0..<rows { tokens[i] = Int32(i % v) }
        switch kernel {
        case .embeddingForward:
            let wpe = filled(t * c)
            return per(rows * c) { Embedding.forward(out: x.pointer, tokens: tokens, wte: w.pointer, wpe: wpe.pointer, batch: batch, sequence: t, channels: c) }
        case .embeddingBackward:
            let dwpe = filled(t * c)
            return per(rows * c) { Embedding.backward(dwte: w.pointer, dwpe: dwpe.pointer, dout: x.pointer, tokens: tokens, batch: batch, sequence: t, channels: c) }
        case .layerNormForward:
            return per(rows * c) {
                LayerNorm.forward(out: y.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: x.pointer, weight: w.pointer, bias: bias.pointer, rows: rows, columns: c)
            }
        case .layerNormBackward:
            let dw = filled(c), db = filled(c)
            return per(rows * c) {
                LayerNorm.backward(dinp: z.pointer, dweight: dw.pointer, dbias: db.pointer, dout: y.pointer, inp: x.pointer, weight: w.pointer,
                                   mean: mean.pointer, rstd: rstd.pointer, rows: rows, columns: c)
            }
        case .attentionForward, .attentionBackward:
            let shape = Attention.Shape(batch: batch, sequence: t, channels: c, heads: model.heads)
            let qkv = filled(rows * 3 * c), probabilities = FloatBuffer(count: batch * model.heads * t * t)
            let out = FloatBuffer(count: rows * c), dqkv = FloatBuffer(count: rows * 3 * c), scratch = FloatBuffer(count: t * t)
            let scores = batch * model.heads * t * t
            Attention.forward(out: out.pointer, probabilities: probabilities.pointer, qkv: qkv.pointer, shape: shape)
            if kernel == .attentionForward {
                return per(scores) { Attention.forward(out: out.pointer, probabilities: probabilities.pointer, qkv: qkv.pointer, shape: shape) }
            }
            return per(scores) {
                Attention.backward(dqkv: dqkv.pointer, dout: x.pointer, qkv: qkv.pointer, probabilities: probabilities.pointer,
                                   scratch: scratch.pointer, shape: shape)
            }
        case .geluForward:
            return per(rows * h) { GELU.forward(y.pointer, x.pointer, count: rows * h, tanhOut: z.pointer) }
        case .geluBackward:
            return per(rows * h) { GELU.backward(y.pointer, x.pointer, tanh: z.pointer, x.pointer, count: rows * h) }
        case .residual:
            return per(rows * c) { Elementwise.accumulate(y.pointer, x.pointer, count: rows * c) }
        case .crossEntropy:
            let losses = FloatBuffer(count: rows), logits = filled(rows * v)
            return per(rows * v) {
                _ = CrossEntropy.forwardBackward(logits: logits.pointer, targets: tokens, losses: losses.pointer, rows: rows, vocabulary: v, gradient: true)
            }
        case .expertRoute, .expertRouteBackward, .expertDispatch, .expertCombine, .expertCombineBackward:
            return expertKernel(kernel, rows: rows, x: x, y: y, z: z)
        case .optimizer:
            let n = model.parameterCount
            let params = filled(n), grads = filled(n), m = FloatBuffer(count: n), v2 = FloatBuffer(count: n)
            var adam = AdamW()
            adam.begin()
            return per(n) {
                _ = clipGradientNorm(grads.pointer, count: n, maxNorm: 1e9)
                adam.update(params: params.pointer, grads: grads.pointer, m: m.pointer, v: v2.pointer, count: n, learningRate: 1e-9, decay: true)
                grads.zero()
            }
        }
    }

    /// An MoE kernel, routed as the model routes (a dense model: 8 experts, top-2).
    private func expertKernel(_ kernel: ElementKernel, rows: Int, x: FloatBuffer, y: FloatBuffer, z: FloatBuffer) -> Measurement {
        let moe = model.moe ?? MixtureOfExperts(experts: 8, topK: 2, expertHidden: model.mlpHidden / 4), c = model.dModel
        let logits = filled(rows * moe.experts), slots = rows * moe.topK
        func route() -> ExpertRouting {
            ExpertRouting(logits: logits.pointer, rows: rows, experts: moe.experts, topK: moe.topK, sequence: sequence,
                          capacity: moe.capacity(sequence: sequence))
        }
        let routing = route()
        switch kernel {
        case .expertRoute: return per(rows * moe.experts) { _ = route() }
        case .expertRouteBackward:
            let dGates = [Float](repeating: 0.5, count: slots)
            return per(rows * moe.experts) { routing.logitGradients(dGates: dGates, balanceScale: 0.01, into: y.pointer) }
        case .expertDispatch: return per(slots * c) { routing.dispatch(x.pointer, into: y.pointer, width: c) }
        case .expertCombine: return per(slots * c) { routing.combine(x.pointer, into: y.pointer, width: c) }
        default: return per(slots * c) { _ = routing.combineBackward(x.pointer, expertOut: y.pointer, dExpertOut: z.pointer, width: c) }
        }
    }

    private func per(_ elements: Int, _ body: () -> Void) -> Measurement {
        var m = Measurement.seconds(repeats: repeats, body)
        m.median /= Double(elements)
        m.samples = m.samples.map { $0 / Double(elements) }
        return m
    }

    private func rate(_ flops: Double, _ time: Measurement) -> Measurement {
        var m = time
        m.median = flops / time.median
        m.samples = time.samples.map { flops / $0 }
        return m
    }

    private func filled(_ count: Int) -> FloatBuffer {
        let buffer = FloatBuffer(count: max(count, 1))
        for i in 0..<buffer.count { buffer[i] = Float((i * 7919) % 1000) * 1e-3 - 0.5 }
        return buffer
    }
}
