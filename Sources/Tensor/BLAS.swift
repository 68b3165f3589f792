import COpenBLAS

/// OpenBLAS entry points fleet uses, with row-major conventions spelled out.
public enum BLAS {
    /// Sets OpenBLAS's own thread count. fleet's kernels split work themselves and keep it at 1.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// `C[M,N] = alpha · op(A) · op(B) + beta · C`, row-major, with explicit leading dimensions.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0 && n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Measures this machine's sgemm rate (FLOP/s) with `threads` OpenBLAS threads on an
    /// n×n×n product, best of `repetitions`: the peak that MFU is measured against.
    public static func measureGEMMRate(threads: Int, n: Int = 1024, repetitions: Int = 4) -> Double {
        setThreads(threads)
        defer { setThreads(1) }
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            gemm(m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
            let elapsed = ContinuousClock.now - start
            let (s, atto) = elapsed.components
            best = Swift.min(best, Double(s) + Double(atto) * 1e-18)
        }
        return 2 * Double(n * n * n) / best
    }
}
