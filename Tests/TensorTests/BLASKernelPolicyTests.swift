import Tensor
import XCTest

/// The kernel choice as a pure function of (CPU, OpenBLAS's choice, user settings), over
/// representative CPUs; the check against a plain reference; and the report's wording.
final class BLASKernelPolicyTests: XCTestCase {
    static let sse: Set<CPUFeatures.Extension> = [.sse3, .ssse3, .sse41, .sse42]
    static let avx2: Set<CPUFeatures.Extension> = sse.union([.avx, .fma, .avx2])
    static let avx512: Set<CPUFeatures.Extension> = avx2.union([.avx512f, .avx512bw, .avx512dq, .avx512vl])

    static let sapphireRapids = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 143, extensions: avx512.union([.avx512bf16, .amx]))
    static let emeraldRapids = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 207, extensions: avx512.union([.avx512bf16, .amx]))
    static let skylakeServer = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 85, extensions: avx512)
    static let haswell = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 63, extensions: avx2)
    static let zen3 = CPUFeatures(vendor: "AuthenticAMD", family: 25, model: 1, extensions: avx2)
    static let zen4 = CPUFeatures(vendor: "AuthenticAMD", family: 25, model: 17, extensions: avx512.union([.avx512bf16]))
    static let sandyBridge = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 42, extensions: sse.union([.avx]))
    static let westmere = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 44, extensions: sse)
    static let oldCore2 = CPUFeatures(vendor: "GenuineIntel", family: 6, model: 15, extensions: [.sse3, .ssse3])

    func testChoiceOverRepresentativeCPUs() {
        typealias Row = (cpu: CPUFeatures, detected: String, action: BLASKernelPolicy.Action, source: BLASKernelPolicy.Source)
        let rows: [Row] = [
            // Debian 12's OpenBLAS 0.3.21 does not know these and falls back to Prescott: better
            // kernels first, Prescott itself last.
            (Self.emeraldRapids, "Prescott", .check(["SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .fleet),
            (Self.sapphireRapids, "Prescott", .check(["SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .fleet),
            // An AVX-512 AMD core that OpenBLAS runs with its AVX2 kernel: only the wider kernel is better.
            (Self.zen4, "Zen", .check(["SkylakeX", "Zen"], required: false), .fleet),
            // Kernels that fit are checked first, with the same or lower levels behind them in
            // case their products change when split.
            (Self.skylakeServer, "SkylakeX", .check(["SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.skylakeServer, "cooperlake", .check(["Cooperlake", "SkylakeX", "Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.haswell, "Haswell", .check(["Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.zen3, "Zen", .check(["Zen", "Haswell", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.sandyBridge, "Sandybridge", .check(["Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.westmere, "Nehalem", .check(["Nehalem", "Core2", "Prescott"], required: false), .openblas),
            (Self.oldCore2, "Core2", .check(["Core2", "Prescott"], required: false), .openblas),
            (Self.oldCore2, "Prescott", .check(["Core2", "Prescott"], required: false), .fleet),
            // Older CPUs that fell back are offered only what they can run.
            (Self.haswell, "Prescott", .check(["Haswell", "Zen", "Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .fleet),
            (Self.zen3, "Sandybridge", .check(["Zen", "Haswell", "Sandybridge"], required: false), .fleet),
            (Self.sandyBridge, "Prescott", .check(["Sandybridge", "Nehalem", "Core2", "Prescott"], required: false), .fleet),
            (Self.westmere, "Prescott", .check(["Nehalem", "Core2", "Prescott"], required: false), .fleet),
            // A kernel name the table does not know (newer OpenBLAS, another architecture) is left alone.
            (Self.zen4, "Zen4", .keep, .openblas),
            (Self.haswell, "ARMV8", .keep, .openblas),
        ]
        for row in rows {
            let d = BLASKernelPolicy.decide(cpu: row.cpu, detected: row.detected, userCoretype: nil, setting: .auto)
            XCTAssertEqual(d.action, row.action, "\(row.cpu.vendor) model \(row.cpu.model), detected \(row.detected)")
            XCTAssertEqual(d.source, row.source, "\(row.cpu.vendor) model \(row.cpu.model), detected \(row.detected)")
        }
    }

    func testUserSettingsWin() throws {
        let cpu = Self.emeraldRapids
        let user = BLASKernelPolicy.decide(cpu: cpu, detected: "Prescott", userCoretype: "Haswell", setting: .auto)
        XCTAssertEqual(user.action, .keep)
        XCTAssertEqual(user.source, .user)
        // OPENBLAS_CORETYPE beats FLEET_BLAS_KERNEL too.
        XCTAssertEqual(BLASKernelPolicy.decide(cpu: cpu, detected: "Prescott", userCoretype: "Haswell", setting: .pinned("SkylakeX")).source, .user)
        // An empty OPENBLAS_CORETYPE is no choice at all.
        XCTAssertEqual(BLASKernelPolicy.decide(cpu: cpu, detected: "Prescott", userCoretype: "", setting: .auto).source, .fleet)
        let keep = BLASKernelPolicy.decide(cpu: cpu, detected: "Prescott", userCoretype: nil, setting: try .init("keep"))
        XCTAssertEqual(keep.action, .keep)
        XCTAssertEqual(keep.source, .openblas)
        let pinned = BLASKernelPolicy.decide(cpu: cpu, detected: "Prescott", userCoretype: nil, setting: try .init("haswell"))
        XCTAssertEqual(pinned.action, .check(["Haswell"], required: true))
        XCTAssertEqual(BLASKernelPolicy.decide(cpu: cpu, detected: "Haswell", userCoretype: nil, setting: .pinned("Haswell")).action, .keep)
    }

    func testSettingParsing() throws {
        XCTAssertEqual(try BLASKernelPolicy.Setting(nil), .auto)
        XCTAssertEqual(try BLASKernelPolicy.Setting(" Auto "), .auto)
        XCTAssertEqual(try BLASKernelPolicy.Setting("KEEP"), .keep)
        XCTAssertEqual(try BLASKernelPolicy.Setting("skylakex"), .pinned("SkylakeX"))
        XCTAssertThrowsError(try BLASKernelPolicy.Setting("Pentium4")) { error in
            XCTAssertTrue("\(error)".contains("not an OpenBLAS kernel"), "\(error)")
            XCTAssertTrue("\(error)".contains("Haswell"), "\(error)")
        }
    }

    func testReportSaysWhoChose() {
        let fleet = BLASKernelReport.describe(kernel: "SkylakeX", version: "0.3.21", environment: [
            "OPENBLAS_CORETYPE": "SkylakeX", BLASKernelReport.markerVariable: BLASKernelReport.marker(kernel: "SkylakeX", detected: "Prescott", note: nil)])
        XCTAssertEqual(fleet.source, .fleet)
        XCTAssertEqual(fleet.headerLine, "blas: OpenBLAS 0.3.21, kernel SkylakeX (chosen by fleet; OpenBLAS detected Prescott)")
        // The user changed OPENBLAS_CORETYPE after fleet chose: the user's choice is what runs.
        let user = BLASKernelReport.describe(kernel: "Haswell", version: "0.3.21", environment: [
            "OPENBLAS_CORETYPE": "Haswell", BLASKernelReport.markerVariable: BLASKernelReport.marker(kernel: "SkylakeX", detected: "Prescott", note: nil)])
        XCTAssertEqual(user.source, .user)
        XCTAssertEqual(user.headerLine, "blas: OpenBLAS 0.3.21, kernel Haswell (OPENBLAS_CORETYPE set by the user)")
        let kept = BLASKernelReport.describe(kernel: "Zen", version: "0.3.21", environment: [
            BLASKernelReport.markerVariable: BLASKernelReport.marker(kernel: "", detected: "Zen", note: "fits this CPU's AVX2+FMA")])
        XCTAssertEqual(kept.source, .openblas)
        XCTAssertEqual(kept.headerLine, "blas: OpenBLAS 0.3.21, kernel Zen (detected by OpenBLAS; fits this CPU's AVX2+FMA)")
        // Separators inside a note cannot shift the fields.
        let odd = BLASKernelReport.describe(kernel: "Haswell", version: nil, environment: [
            "OPENBLAS_CORETYPE": "Haswell", BLASKernelReport.markerVariable: BLASKernelReport.marker(kernel: "Haswell", detected: "Prescott", note: "a|b")])
        XCTAssertEqual(odd.detected, "Prescott")
        XCTAssertEqual(odd.note, "a/b")
    }

    func testThisMachine() {
        let cpu = CPUFeatures.current
        #if arch(x86_64)
        XCTAssertFalse(cpu.vendor.isEmpty)
        XCTAssertTrue(cpu.has(.sse3), cpu.summary)
        #endif
        if let peak = cpu.peakFLOPs(threads: 2) {
            XCTAssertEqual(peak, 2 * cpu.peakFLOPs(threads: 1)!, accuracy: 1)
            XCTAssertGreaterThan(peak, 1e9)
        }
        XCTAssertFalse(BLAS.coreName.isEmpty)
        XCTAssertTrue(BLAS.configuration.hasPrefix("OpenBLAS"), BLAS.configuration)
    }

    func testCheckPassesOnThisKernelAndCatchesWrongProducts() {
        let result = BLASKernelCheck.run()
        XCTAssertNil(result.failure, "OpenBLAS kernel \(result.kernel) failed its own check")
        // Whether this process's kernel is split-invariant depends on the kernel (not on fleet):
        // the check must agree with itself and with a direct comparison.
        XCTAssertEqual(result.splitInvariant, BLASKernelCheck.splitInvariance() == nil)
        XCTAssertGreaterThan(result.flops, 0)
        typealias Wrong = (name: String, gemm: BLASKernelCheck.GEMM)
        let correct: BLASKernelCheck.GEMM = { BLAS.gemm(transA: $0, transB: $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8, ldb: $9, beta: $10, c: $11, ldc: $12) }
        let wrongs: [Wrong] = [
            ("ignores beta", { BLAS.gemm(transA: $0, transB: $1, m: $2, n: $3, k: $4, alpha: $5, a: $6, lda: $7, b: $8, ldb: $9, beta: 0, c: $11, ldc: $12) }),
            ("drops the last term of each dot product", { BLAS.gemm(transA: $0, transB: $1, m: $2, n: $3, k: $4 - 1, alpha: $5, a: $6, lda: $7, b: $8, ldb: $9, beta: $10, c: $11, ldc: $12) }),
            ("writes past the matrix into the padding", { tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
                correct(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                if ldc > n { c[n] = .nan } }),
            ("flips one bit of one result", { tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
                correct(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
                c[ldc * (m / 2) + n / 2] = Float(bitPattern: c[ldc * (m / 2) + n / 2].bitPattern ^ (1 << 22)) }),
        ]
        for wrong in wrongs {
            let failures = BLASKernelCheck.cases.compactMap { BLASKernelCheck.check($0, gemm: wrong.gemm) }
            XCTAssertFalse(failures.isEmpty, "a gemm that \(wrong.name) passed the check")
        }
        XCTAssertTrue(BLASKernelCheck.cases.allSatisfy { BLASKernelCheck.check($0, gemm: correct) == nil })
        // A reference gemm that sums in one fixed order is split-invariant; one whose order depends
        // on the row count (as OpenBLAS's tail tiles do) is caught.
        let plain: BLASKernelCheck.GEMM = { tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            for i in 0..<m { for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += (tA ? a[p * lda + i] : a[i * lda + p]) * (tB ? b[j * ldb + p] : b[p * ldb + j]) }
                c[i * ldc + j] = alpha * sum + beta * c[i * ldc + j]
            } }
        }
        XCTAssertNil(BLASKernelCheck.splitInvariance(gemm: plain))
        let tiled: BLASKernelCheck.GEMM = { tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            for i in 0..<m { for j in 0..<n {
                var even: Float = 0, odd: Float = 0, single: Float = 0
                for p in 0..<k {
                    let x = (tA ? a[p * lda + i] : a[i * lda + p]) * (tB ? b[j * ldb + p] : b[p * ldb + j])
                    if p % 2 == 0 { even += x } else { odd += x }
                    single += x
                }
                // Rows of a full 4-row tile use two accumulators, the tail rows one.
                let sum = i < m - m % 4 ? even + odd : single
                c[i * ldc + j] = alpha * sum + beta * c[i * ldc + j]
            } }
        }
        XCTAssertNotNil(BLASKernelCheck.splitInvariance(gemm: tiled))
    }
}
