import OpLog

/// A fully connected layer `out[M,N] = inp[M,K] · Wᵀ + b` with `W` stored `[N,K]` (PyTorch's convention).
///
/// Leading dimensions may exceed the logical sizes, so a tensor-parallel shard can work
/// on a block of a larger matrix in place: a column block of `W` (row-parallel layers)
/// or a column block of `out` (one section of a packed QKV output).
///
/// With several threads, fleet splits the GEMMs itself (rows of the output, or rows of
/// the weight gradient) and runs single-threaded OpenBLAS in each part: for the small,
/// skinny products of a small GPT that scales better than OpenBLAS's own threading.
public enum Linear {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, m: Int, k: Int, n: Int,
                               ldOut: Int? = nil, ldInput: Int? = nil, ldWeight: Int? = nil) {
        let ldo = ldOut ?? n, ldi = ldInput ?? k, ldw = ldWeight ?? k
        // Logged as one product, however many threads split it.
        OpLog.run(Self.product(m: m, n: n, k: k, transB: true)) {
            Parallel.forEach(m, minimumPerThread: 64) { rows in
                let o = out + rows.lowerBound * ldo
                if let bias {
                    // Start from the bias so the GEMM adds onto it (beta = 1) in one pass.
                    for r in 0..<rows.count { (o + r * ldo).update(from: bias, count: n) }
                }
                BLAS.gemm(transB: true, m: rows.count, n: n, k: k, a: inp + rows.lowerBound * ldi, lda: ldi, b: weight, ldb: ldw,
                          beta: bias == nil ? 0 : 1, c: o, ldc: ldo)
            }
        }
    }

    /// `dinp = dout · W` (or `+=` with `accumulateInput`), `dW += doutᵀ · inp`, `db += Σ_rows dout`.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                m: Int, k: Int, n: Int, accumulateInput: Bool = true,
                                ldOut: Int? = nil, ldInput: Int? = nil, ldWeight: Int? = nil) {
        if let dinp {
            inputGradient(dinp: dinp, dout: dout, weight: weight, m: m, k: k, n: n, accumulate: accumulateInput,
                          ldOut: ldOut, ldInput: ldInput, ldWeight: ldWeight)
        }
        weightGradient(dweight: dweight, dout: dout, inp: inp, m: m, k: k, n: n, accumulate: true,
                       ldOut: ldOut, ldInput: ldInput, ldWeight: ldWeight)
        if let dbias { Elementwise.addColumnSums(dbias, dout, rows: m, columns: n, stride: ldOut ?? n) }
    }

    /// `dinp[M,K] = dout[M,N] · W[N,K]` (or `+=` with `accumulate`).
    public static func inputGradient(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                     m: Int, k: Int, n: Int, accumulate: Bool,
                                     ldOut: Int? = nil, ldInput: Int? = nil, ldWeight: Int? = nil) {
        let ldo = ldOut ?? n, ldi = ldInput ?? k, ldw = ldWeight ?? k
        OpLog.run(Self.product(m: m, n: k, k: n)) {
            Parallel.forEach(m, minimumPerThread: 64) { rows in
                BLAS.gemm(m: rows.count, n: k, k: n, a: dout + rows.lowerBound * ldo, lda: ldo, b: weight, ldb: ldw,
                          beta: accumulate ? 1 : 0, c: dinp + rows.lowerBound * ldi, ldc: ldi)
            }
        }
    }

    /// `dW[N,K] = doutᵀ · inp` over the M rows (or `+=` with `accumulate`).
    public static func weightGradient(dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                      m: Int, k: Int, n: Int, accumulate: Bool,
                                      ldOut: Int? = nil, ldInput: Int? = nil, ldWeight: Int? = nil) {
        let ldo = ldOut ?? n, ldi = ldInput ?? k, ldw = ldWeight ?? k
        // The weight gradient reduces over rows: split its own rows (output features) instead.
        OpLog.run(Self.product(m: n, n: k, k: m, transA: true)) {
            Parallel.forEach(n, minimumPerThread: 16) { features in
                BLAS.gemm(transA: true, m: features.count, n: k, k: m, a: dout + features.lowerBound, lda: ldo, b: inp, ldb: ldi,
                          beta: accumulate ? 1 : 0, c: dweight + features.lowerBound * ldw, ldc: ldw)
            }
        }
    }

    /// A whole product as an `OpLog` entry.
    static func product(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) -> LoggedOp {
        var op = LoggedOp(kind: "matmul")
        (op.m, op.n, op.k, op.transA, op.transB) = (m, n, k, transA, transB)
        return op
    }
}
