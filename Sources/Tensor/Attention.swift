/// Causal multi-head self-attention on a packed `qkv[B, T, 3C]` (queries, keys, values).
///
/// Per (batch, head): scores = Q·Kᵀ/√hs with future positions masked, softmax per row,
/// out = P·V. Each (batch, head) pair is independent, so pairs run in parallel with
/// single-threaded GEMMs inside and results never depend on the thread count.
public enum Attention {
    public struct Shape {
        public let batch: Int, sequence: Int, channels: Int, heads: Int
        public var headSize: Int { channels / heads }
        public init(batch: Int, sequence: Int, channels: Int, heads: Int) {
            self.batch = batch
            self.sequence = sequence
            self.channels = channels
            self.heads = heads
        }
    }

    /// `probabilities` holds `[B, H, T, T]` softmax weights for the backward pass; `out` is `[B, T, C]`.
    public static func forward(out: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, shape: Shape) {
        let t = shape.sequence, c = shape.channels, hs = shape.headSize
        let scale = 1 / Float(hs).squareRoot()
        Parallel.forEach(shape.batch * shape.heads) { pairs in
            for pair in pairs {
                let b = pair / shape.heads, head = pair % shape.heads
                let q = qkv + b * t * 3 * c + head * hs, k = q + c, v = q + 2 * c
                let p = probabilities + pair * t * t
                // Causal: the first h query rows only see the first h keys, so that block's
                // upper-right quarter is never computed (a quarter of the score FLOPs saved).
                let h = t / 2, lower = t - h
                BLAS.gemm(transB: true, m: h, n: h, k: hs, alpha: scale, a: q, lda: 3 * c, b: k, ldb: 3 * c, c: p, ldc: t)
                BLAS.gemm(transB: true, m: lower, n: t, k: hs, alpha: scale, a: q + h * 3 * c, lda: 3 * c, b: k, ldb: 3 * c,
                          c: p + h * t, ldc: t)
                for i in 0..<t {
                    let row = p + i * t
                    let maximum = Reductions.maximum(row, count: i + 1)
                    let inverse = 1 / Reductions.exponentiate(row, shift: maximum, count: i + 1)
                    for j in 0...i { row[j] *= inverse }
                    for j in (i + 1)..<t { row[j] = 0 }
                }
                let y = out + b * t * c + head * hs
                BLAS.gemm(m: h, n: hs, k: h, a: p, lda: t, b: v, ldb: 3 * c, c: y, ldc: c)
                BLAS.gemm(m: lower, n: hs, k: t, a: p + h * t, lda: t, b: v, ldb: 3 * c, c: y + h * c, ldc: c)
            }
        }
    }

    /// Writes `dqkv` (overwriting it) from `dout`; `scratch` needs `threads × T·T` floats.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                                probabilities: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>, shape: Shape) {
        let t = shape.sequence, c = shape.channels, hs = shape.headSize
        let scale = 1 / Float(hs).squareRoot()
        let pairs = shape.batch * shape.heads
        Parallel.forEachWorker(pairs) { worker, range in
            let dp = scratch + worker * t * t
            for pair in range {
                let b = pair / shape.heads, head = pair % shape.heads
                let offset = b * t * 3 * c + head * hs
                let q = qkv + offset, k = q + c, v = q + 2 * c
                let dq = dqkv + offset, dk = dq + c, dv = dq + 2 * c
                let p = probabilities + pair * t * t
                let dy = dout + b * t * c + head * hs
                // The same causal blocking as the forward pass: the top-right quarter is zero.
                let h = t / 2, lower = t - h
                // dP = dY·Vᵀ
                BLAS.gemm(transB: true, m: h, n: h, k: hs, a: dy, lda: c, b: v, ldb: 3 * c, c: dp, ldc: t)
                BLAS.gemm(transB: true, m: lower, n: t, k: hs, a: dy + h * c, lda: c, b: v, ldb: 3 * c, c: dp + h * t, ldc: t)
                // dV = Pᵀ·dY: the first h keys are seen by every query, the others only by the lower rows.
                BLAS.gemm(transA: true, m: h, n: hs, k: t, a: p, lda: t, b: dy, ldb: c, c: dv, ldc: 3 * c)
                BLAS.gemm(transA: true, m: lower, n: hs, k: lower, a: p + h * t + h, lda: t, b: dy + h * c, ldb: c,
                          c: dv + h * 3 * c, ldc: 3 * c)
                // Softmax backward: dS = P ⊙ (dP − rowsum(P ⊙ dP)), zero above the diagonal.
                for i in 0..<t {
                    let prow = p + i * t, drow = dp + i * t
                    let dot = Reductions.dot(prow, drow, count: i + 1)
                    for j in 0...i { drow[j] = prow[j] * (drow[j] - dot) }
                    for j in (i + 1)..<t { drow[j] = 0 }
                }
                // dQ = dS·K·scale ; dK = dSᵀ·Q·scale
                BLAS.gemm(m: h, n: hs, k: h, alpha: scale, a: dp, lda: t, b: k, ldb: 3 * c, c: dq, ldc: 3 * c)
                BLAS.gemm(m: lower, n: hs, k: t, alpha: scale, a: dp + h * t, lda: t, b: k, ldb: 3 * c, c: dq + h * 3 * c, ldc: 3 * c)
                BLAS.gemm(transA: true, m: h, n: hs, k: t, alpha: scale, a: dp, lda: t, b: q, ldb: 3 * c, c: dk, ldc: 3 * c)
                BLAS.gemm(transA: true, m: lower, n: hs, k: lower, alpha: scale, a: dp + h * t + h, lda: t, b: q + h * 3 * c,
                          ldb: 3 * c, c: dk + h * 3 * c, ldc: 3 * c)
            }
        }
    }
}
