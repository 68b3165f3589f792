import Foundation
import Tensor

/// Which OpenBLAS kernel a computing fleet process should run (`BLASKernelPolicy`), checking
/// candidates in child processes (`BLASKernelProbe`) and caching verdicts per library build
/// and CPU (`BLASKernelCache`). The caller acts on it before anything loads BLAS state:
/// keep the loaded kernel (with a marker saying why), or restart with OPENBLAS_CORETYPE set.
public enum BLASKernelChoice {
    /// Keep OpenBLAS's kernel; the marker (when any) tells workers and reports what was decided.
    case keep(marker: String?)
    /// Restart this process with OPENBLAS_CORETYPE=`kernel` and the marker.
    case restart(kernel: String, marker: String, detected: String)

    /// Test hooks: pretend OpenBLAS detected this kernel, or that the CPU has AVX-512, so the
    /// choosing path (checks in children, crashes, the re-exec) runs on any machine.
    public static let assumeDetectedVariable = "FLEET_BLAS_ASSUME_DETECTED"
    public static let assumeAVX512Variable = "FLEET_BLAS_ASSUME_AVX512"

    /// Decides from FLEET_BLAS_KERNEL, OPENBLAS_CORETYPE, the CPU and the cache; throws when the
    /// setting is malformed or a pinned kernel fails its check.
    public init(environment: [String: String]) throws {
        let setting = try BLASKernelPolicy.Setting(environment["FLEET_BLAS_KERNEL"])
        var cpu = CPUFeatures.current
        if environment[Self.assumeAVX512Variable] == "1" { cpu.extensions.formUnion([.avx512f, .avx512bw, .avx512dq, .avx512vl]) }
        let detected = environment[Self.assumeDetectedVariable] ?? BLAS.coreName
        let userCoretype = environment[Self.assumeDetectedVariable] == nil ? environment["OPENBLAS_CORETYPE"] : nil
        let decision = BLASKernelPolicy.decide(cpu: cpu, detected: detected, userCoretype: userCoretype, setting: setting)
        guard case let .check(candidates, required) = decision.action else {
            self = .keep(marker: decision.source != .user ? BLASKernelReport.marker(kernel: "", detected: detected, note: decision.keptNote) : nil)
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
            if required { throw BLASKernelError.pinnedKernelFailed(candidates[0], reason: rejected) }
            self = .keep(marker: BLASKernelReport.marker(kernel: "", detected: detected, note: "no kernel passed its check (\(rejected))"))
            return
        }
        var notes: [String] = []
        if case .pinned = setting { notes.append("FLEET_BLAS_KERNEL=\(chosen)") }
        if !rejected.isEmpty { notes.append("rejected: \(rejected)") }
        if verdict.splitInvariant == false { notes.append("its products change when split: --deterministic is refused") }
        if chosen.lowercased() == detected.lowercased() && environment[Self.assumeDetectedVariable] == nil {
            // OpenBLAS's own kernel passed: nothing to restart for.
            self = .keep(marker: BLASKernelReport.marker(
                kernel: "", detected: detected, note: ([decision.keptNote].compactMap { $0 } + notes).joined(separator: "; ")))
            return
        }
        let note = notes.isEmpty ? nil : notes.joined(separator: "; ")
        self = .restart(kernel: chosen, marker: BLASKernelReport.marker(kernel: chosen, detected: detected, note: note), detected: detected)
    }
}
