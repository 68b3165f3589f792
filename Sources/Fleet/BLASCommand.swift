import ArgumentParser
import Foundation
import Tensor

/// `fleet blas`: which BLAS kernel fleet runs on this machine and why, checked and measured.
struct BLASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas",
        abstract: "Show which OpenBLAS kernel fleet runs here, who chose it and why, check it and measure it.",
        discussion: """
        fleet reads what the CPU supports (cpuid) and which kernel OpenBLAS picked. When OpenBLAS fell
        back below the CPU (an OpenBLAS that does not know a newer CPU runs its SSE3 'Prescott' code),
        fleet checks better kernels in child processes and restarts with the best that passes
        (OPENBLAS_CORETYPE). A kernel must compute correct products, and the same bits however a product is
        split over threads, ranks and shards (fleet's thread-count and layout invariance rest on it): a
        kernel that does not is replaced by the best one that does. An OPENBLAS_CORETYPE you set always wins; FLEET_BLAS_KERNEL=keep leaves
        OpenBLAS's choice alone, FLEET_BLAS_KERNEL=NAME pins a kernel. Verdicts are cached in
        ~/.cache/fleet/blas-kernels.json (FLEET_CACHE_DIR or XDG_CACHE_HOME move it).
        """)

    @Flag(help: "Print one JSON object.")
    var json = false

    @Flag(help: .hidden)
    var probe = false

    func run() throws {
        if probe {
            // A child of BLASStartup: check the kernel this process loaded and print the verdict.
            let result = BLASKernelCheck.run()
            let data = try JSONEncoder().encode(result)
            Console.out(String(decoding: data, as: UTF8.self))
            return
        }
        let report = BLASKernelReport.current(environment: ProcessInfo.processInfo.environment)
        let cpu = CPUFeatures.current
        let check = BLASKernelCheck.run()
        let failure = check.failure
        let rate = BLAS.measureGEMMRate(threads: 1)
        let peak = cpu.peakFLOPs(threads: 1)
        if json {
            Console.json([("library", report.library), ("version", report.version ?? ""), ("configuration", BLAS.configuration),
                          ("blas_kernel", report.kernel), ("blas_kernel_source", report.source.rawValue),
                          ("detected", report.detected ?? ""), ("note", report.note ?? ""), ("cpu", cpu.summary),
                          ("check_passed", failure == nil), ("split_invariant", check.passed && check.splitInvariant),
                          ("sgemm_gflops", rate / 1e9),
                          ("cpu_peak_gflops", peak.map { $0 / 1e9 } ?? Double.nan)])
            return
        }
        Console.out(report.headerLine)
        Console.out("library build: \(BLAS.configuration)")
        Console.out("cpu: \(cpu.summary)")
        Console.out("check of this kernel's sgemm against a plain reference: " + (failure.map { "FAILED: \($0)" } ?? "passed"))
        if failure == nil {
            Console.out("the same products computed in pieces (as threads, ranks and shards split them): "
                        + (check.splitFailure.map { "DIFFERENT BITS (--deterministic refuses this kernel): \($0)" } ?? "bitwise identical"))
        }
        var line = String(format: "sgemm 1024³, 1 thread: %.1f GFLOP/s", rate / 1e9)
        if let peak {
            line += String(format: " = %.0f%% of the CPU's peak %.1f GFLOP/s per core (%d FLOP/cycle)", 100 * rate / peak, peak / 1e9, cpu.float32FLOPsPerCycle)
        }
        Console.out(line)
        if failure != nil { throw ExitCode(1) }
    }
}
