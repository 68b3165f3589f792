import Foundation
import COpenBLAS
import OpLog

/// OpenBLAS entry points fleet uses, with row-major conventions spelled out.
public enum BLAS {
    /// Sets OpenBLAS's own thread count. fleet's kernels split work themselves and keep it at 1.
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// The kernel OpenBLAS runs ("Haswell", "SkylakeX", … as `openblas_get_corename` names it).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// How the library was built ("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64").
    public static var configuration: String { openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS" }

    /// The version from the build configuration ("0.3.21"), when it names one.
    public static var version: String? {
        let words = configuration.split(separator: " ")
        guard words.count > 1, words[0] == "OpenBLAS", words[1].first?.isNumber == true else { return nil }
        return String(words[1])
    }

    /// `gemm` with positional arguments, as a value (`BLASKernelCheck.GEMM`).
    public static func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                            _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// `C[M,N] = alpha · op(A) · op(B) + beta · C`, row-major, with explicit leading dimensions.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0 && n > 0 else { return }
        OpLog.run({ var op = LoggedOp(kind: "matmul"); (op.m, op.n, op.k, op.transA, op.transB) = (m, n, k, transA, transB); return op }()) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
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
