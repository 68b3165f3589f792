import Foundation
import Tensor
import Workflows

/// Before any command that computes, makes sure OpenBLAS runs the best kernel for this CPU
/// that passes its check (`BLASKernelPolicy`, `BLASKernelCheck`).
///
/// OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads, so a better kernel takes a
/// fresh image: fleet checks candidates in child processes (`fleet blas --probe`), then
/// re-executes itself with OPENBLAS_CORETYPE set and a marker saying what it chose and why.
/// The process keeps its pid, arguments and environment, so this works the same for a command
/// started by hand, by `fleet train`'s own launcher and by mpirun (it happens before MPI_Init);
/// workers inherit the marker and never choose again. Verdicts are cached per (library build,
/// CPU), so later starts cost one file read.
enum BLASStartup {
    /// Subcommands that run kernels (the others never touch BLAS).
    static let computing: Set<String> = ["train", "generate", "bench", "calibrate", "compare", "chaos", "blas", "worker"]

    /// Test hooks: pretend OpenBLAS detected this kernel, or that the CPU has AVX-512, so the
    /// choosing path (checks in children, crashes, the re-exec) runs on any machine.
    static let assumeDetectedVariable = "FLEET_BLAS_ASSUME_DETECTED"
    static let assumeAVX512Variable = "FLEET_BLAS_ASSUME_AVX512"

    /// Runs before argument parsing. Returns normally when the process keeps its kernel;
    /// otherwise it does not return (the process re-executes itself).
    static func prepare(arguments: [String] = CommandLine.arguments, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard arguments.count > 1, computing.contains(arguments[1]), !arguments.contains("--probe"),
              (environment[BLASKernelReport.markerVariable] ?? "").isEmpty else { return }
        let setting: BLASKernelPolicy.Setting
        do { setting = try BLASKernelPolicy.Setting(environment["FLEET_BLAS_KERNEL"]) } catch {
            Console.err("fleet: error: \(error)")
            exit(2)
        }
        var cpu = CPUFeatures.current
        if environment[assumeAVX512Variable] == "1" { cpu.extensions.formUnion([.avx512f, .avx512bw, .avx512dq, .avx512vl]) }
        let detected = environment[assumeDetectedVariable] ?? BLAS.coreName
        let userCoretype = environment[assumeDetectedVariable] == nil ? environment["OPENBLAS_CORETYPE"] : nil
        let decision = BLASKernelPolicy.decide(cpu: cpu, detected: detected, userCoretype: userCoretype, setting: setting)
        guard case let .check(candidates, required) = decision.action else {
            if decision.source != .user {
                setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(kernel: "", detected: detected, note: decision.keptNote), 1)
            }
            return
        }
        let cache = BLASKernelCache(directory: BLASKernelCache.directory(environment: environment))
        let key = [BLAS.configuration, cpu.identity, detected, candidates.joined(separator: ",")].joined(separator: "|")
        let verdict = cache.verdict(for: key) ?? {
            let fresh = BLASKernelProbe.choose(from: candidates)
            cache.store(fresh, for: key)
            return fresh
        }()
        let rejected = verdict.rejected.map { "\($0.kernel) \($0.reason)" }.joined(separator: "; ")
        guard let chosen = verdict.kernel else {
            if required {
                Console.err("fleet: error: \(BLASKernelError.pinnedKernelFailed(candidates[0], reason: rejected))")
                exit(2)
            }
            setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(
                kernel: "", detected: detected, note: "no kernel passed its check (\(rejected))"), 1)
            return
        }
        var notes: [String] = []
        if case .pinned = setting { notes.append("FLEET_BLAS_KERNEL=\(chosen)") }
        if !rejected.isEmpty { notes.append("rejected: \(rejected)") }
        if verdict.splitInvariant == false { notes.append("its products change when split: --deterministic is refused") }
        if chosen.lowercased() == detected.lowercased() && environment[assumeDetectedVariable] == nil {
            // OpenBLAS's own kernel passed: nothing to restart for.
            setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(
                kernel: "", detected: detected, note: ([decision.keptNote].compactMap { $0 } + notes).joined(separator: "; ")), 1)
            return
        }
        let note = notes.isEmpty ? nil : notes.joined(separator: "; ")
        setenv("OPENBLAS_CORETYPE", chosen, 1)
        setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(kernel: chosen, detected: detected, note: note), 1)
        reexecute(arguments)
        // Only reached when exec failed: go on with OpenBLAS's own kernel, and say so.
        Console.err("fleet: warning: could not restart with OpenBLAS kernel \(chosen) (\(String(cString: strerror(errno)))); running \(BLAS.coreName)")
        unsetenv("OPENBLAS_CORETYPE")
        setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(kernel: "", detected: detected, note: "restart with \(chosen) failed"), 1)
    }

    /// Replaces this process's image with a fresh one of the same binary and arguments.
    private static func reexecute(_ arguments: [String]) {
        fflush(nil)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
    }
}
