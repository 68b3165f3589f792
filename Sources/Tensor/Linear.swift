/// A fully connected layer `out[M,N] = inp[M,K] · Wᵀ + b` with `W` stored `[N,K]` (PyTorch's convention).
///
/// With several threads, fleet splits the GEMMs itself (rows of the output, or rows of
/// the weight gradient) and runs single-threaded OpenBLAS in each part: for the small,
/// skinny products of a small GPT that scales better than OpenBLAS's own threading.
public enum Linear {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, m: Int, k: Int, n: Int) {
        Parallel.forEach(m, minimumPerThread: 64) { rows in
            let o = out + rows.lowerBound * n
            if let bias {
                // Start from the bias so the GEMM adds onto it (beta = 1) in one pass.
                for r in 0..<rows.count { (o + r * n).update(from: bias, count: n) }
            }
            BLAS.gemm(transB: true, m: rows.count, n: n, k: k, a: inp + rows.lowerBound * k, lda: k, b: weight, ldb: k,
                      beta: bias == nil ? 0 : 1, c: o, ldc: n)
        }
    }

    /// `dinp = dout · W` (or `+=` with `accumulateInput`), `dW += doutᵀ · inp`, `db += Σ_rows dout`.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                m: Int, k: Int, n: Int, accumulateInput: Bool = true) {
        if let dinp {
            Parallel.forEach(m, minimumPerThread: 64) { rows in
                BLAS.gemm(m: rows.count, n: k, k: n, a: dout + rows.lowerBound * n, lda: n, b: weight, ldb: k,
                          beta: accumulateInput ? 1 : 0, c: dinp + rows.lowerBound * k, ldc: k)
            }
        }
        // The weight gradient reduces over rows: split its own rows (output features) instead.
        Parallel.forEach(n, minimumPerThread: 16) { features in
            BLAS.gemm(transA: true, m: features.count, n: k, k: m, a: dout + features.lowerBound, lda: n, b: inp, ldb: k,
                      beta: 1, c: dweight + features.lowerBound * k, ldc: k)
        }
        if let dbias { Elementwise.addColumnSums(dbias, dout, rows: m, columns: n) }
    }
}
