/// Checks the sgemm of the OpenBLAS kernel this process runs against a plain reference, on the
/// shapes the trainer issues: all four transpose pairs, leading dimensions wider than the
/// matrices (attention reads Q, K and V out of one [T, 3C] buffer), alpha ≠ 1, and beta = 1
/// (weight gradients accumulate).
///
/// Why: older OpenBLAS builds are known to compute wrong results (or die on an illegal
/// instruction) with some kernels on some processors, so fleet adopts no kernel unchecked. The
/// check runs in a child process, so a crash costs a candidate, not the run.
public enum BLASKernelCheck {
    public struct Case: Sendable {
        public var transA: Bool, transB: Bool
        public var m: Int, n: Int, k: Int
        /// Extra columns beyond the stored matrix in each leading dimension.
        public var pad: Int
        public var alpha: Float, beta: Float
    }

    public struct Result: Sendable, Codable, Equatable {
        /// The kernel that ran (`openblas_get_corename`).
        public var kernel: String
        /// nil when every case matched; else the first mismatch.
        public var failure: String?
        /// nil when split products equal whole ones bit for bit; else the first difference.
        public var splitFailure: String?
        /// One-thread sgemm rate on 512³ (FLOP/s), for the record.
        public var flops: Double
        public var passed: Bool { failure == nil }
        public var splitInvariant: Bool { splitFailure == nil }
    }

    public static let cases: [Case] = [
        Case(transA: false, transB: true, m: 256, n: 384, k: 128, pad: 0, alpha: 1, beta: 0),     // Linear forward: X·Wᵀ
        Case(transA: false, transB: false, m: 256, n: 128, k: 384, pad: 0, alpha: 1, beta: 0),    // Linear backward: dY·W
        Case(transA: true, transB: false, m: 384, n: 128, k: 256, pad: 0, alpha: 1, beta: 1),     // weight gradient, accumulated
        Case(transA: false, transB: true, m: 128, n: 128, k: 32, pad: 352, alpha: 0.177, beta: 0), // attention scores out of [T, 3C]
        Case(transA: true, transB: true, m: 67, n: 129, k: 45, pad: 7, alpha: -0.5, beta: 1),     // awkward sizes, both transposed
        Case(transA: false, transB: false, m: 1, n: 257, k: 513, pad: 3, alpha: 1, beta: 0),      // a single row
        Case(transA: true, transB: false, m: 33, n: 17, k: 1000, pad: 1, alpha: 2, beta: 1),      // long reductions
    ]

    /// Runs every case and a short rate measurement with the kernel this process loaded.
    public static func run() -> Result {
        // One OpenBLAS thread, as fleet runs it (its own threads split work over outputs).
        BLAS.setThreads(1)
        for c in cases {
            if let failure = check(c) { return Result(kernel: BLAS.coreName, failure: failure, splitFailure: nil, flops: 0) }
        }
        return Result(kernel: BLAS.coreName, failure: nil, splitFailure: splitInvariance(),
                      flops: BLAS.measureGEMMRate(threads: 1, n: 512, repetitions: 3))
    }

    /// The first case whose product changes when computed in pieces, or nil.
    public static func splitInvariance(gemm: GEMM = BLAS.gemm(_:_:_:_:_:_:_:_:_:_:_:_:_:)) -> String? {
        BLAS.setThreads(1)
        for c in cases { if let failure = checkSplits(c, gemm: gemm) { return failure } }
        return nil
    }

    /// Compares one product with a Double reference; the tolerance scales with the sum of the
    /// absolute terms, as Float32 rounding of a dot product of length k does.
    /// `gemm` is BLAS.gemm but for tests, which hand in a wrong one to see the check fail.
    public typealias GEMM = (_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                             _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) -> Void

    public static func check(_ c: Case, gemm: GEMM = BLAS.gemm(_:_:_:_:_:_:_:_:_:_:_:_:_:)) -> String? {
        let o = Operands(c)
        let (a, b, c0, lda, ldb, ldc) = (o.a, o.b, o.c0, o.lda, o.ldb, o.ldc)
        var out = c0
        o.multiply(rows: 0..<c.m, columns: 0..<c.n, into: &out, gemm: gemm)
        for i in 0..<c.m {
            for j in 0..<ldc {
                let index = i * ldc + j
                guard j < c.n else {
                    if out[index].bitPattern != c0[index].bitPattern { return "\(describe(c)): wrote outside C at [\(i), \(j)]" }
                    continue
                }
                var sum = 0.0, magnitude = 0.0
                for p in 0..<c.k {
                    let x = Double(c.transA ? a[p * lda + i] : a[i * lda + p])
                    let y = Double(c.transB ? b[j * ldb + p] : b[p * ldb + j])
                    sum += x * y
                    magnitude += abs(x * y)
                }
                let expected = Double(c.alpha) * sum + Double(c.beta) * Double(c0[index])
                let tolerance = 1e-5 * (abs(Double(c.alpha)) * magnitude + abs(Double(c.beta * c0[index]))) + 1e-6
                guard abs(Double(out[index]) - expected) <= tolerance, out[index].isFinite else {
                    return "\(describe(c)): C[\(i), \(j)] = \(out[index]), expected \(Float(expected))"
                }
            }
        }
        return nil
    }

    /// Computes `c` whole, then again in pieces: rows split as threads and ranks split them
    /// (a single row, an uneven third, the rest) and columns as tensor parallelism does.
    static func checkSplits(_ c: Case, gemm: GEMM) -> String? {
        let o = Operands(c)
        var whole = o.c0, pieces = o.c0
        o.multiply(rows: 0..<c.m, columns: 0..<c.n, into: &whole, gemm: gemm)
        let rowCuts = Array(Set([0, min(1, c.m), c.m / 3, c.m])).sorted()
        let columnCuts = Array(Set([0, c.n / 2 + 1, c.n].map { min($0, c.n) })).sorted()
        for (r0, r1) in zip(rowCuts, rowCuts.dropFirst()) where r0 < r1 {
            for (c0, c1) in zip(columnCuts, columnCuts.dropFirst()) where c0 < c1 {
                o.multiply(rows: r0..<r1, columns: c0..<c1, into: &pieces, gemm: gemm)
            }
        }
        for i in 0..<(c.m * o.ldc) where whole[i].bitPattern != pieces[i].bitPattern {
            return "\(describe(c)): C[\(i / o.ldc), \(i % o.ldc)] is \(whole[i]) computed whole but \(pieces[i]) computed in pieces"
        }
        return nil
    }

    /// Deterministic operands of a case, and products of any block of its result.
    struct Operands {
        let c: Case
        let a: [Float], b: [Float], c0: [Float]
        let lda: Int, ldb: Int, ldc: Int
        init(_ c: Case) {
            self.c = c
            let (ar, ac) = c.transA ? (c.k, c.m) : (c.m, c.k)
            let (br, bc) = c.transB ? (c.n, c.k) : (c.k, c.n)
            lda = ac + c.pad; ldb = bc + c.pad; ldc = c.n + c.pad
            var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(c.m * 131 + c.n * 7 + c.k)
            func next() -> Float {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 1000
            }
            a = (0..<(ar * lda)).map { _ in next() }
            b = (0..<(br * ldb)).map { _ in next() }
            c0 = (0..<(c.m * ldc)).map { _ in next() }
        }

        /// `out[rows, columns] = alpha · op(A)[rows, :] · op(B)[:, columns] + beta · out[rows, columns]`.
        func multiply(rows: Range<Int>, columns: Range<Int>, into out: inout [Float], gemm: GEMM) {
            let aOffset = c.transA ? rows.lowerBound : rows.lowerBound * lda
            let bOffset = c.transB ? columns.lowerBound * ldb : columns.lowerBound
            let cOffset = rows.lowerBound * ldc + columns.lowerBound
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { pc in
                        gemm(c.transA, c.transB, rows.count, columns.count, c.k, c.alpha, pa.baseAddress! + aOffset, lda,
                             pb.baseAddress! + bOffset, ldb, c.beta, pc.baseAddress! + cOffset, ldc)
                    }
                }
            }
        }
    }

    public static func describe(_ c: Case) -> String {
        "sgemm \(c.transA ? "Aᵀ" : "A")·\(c.transB ? "Bᵀ" : "B") m=\(c.m) n=\(c.n) k=\(c.k)"
    }
}
