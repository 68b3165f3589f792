import Foundation

/// Which OpenBLAS kernel fleet should run on a CPU, as a pure function of the CPU's features,
/// OpenBLAS's own choice and the user's settings.
///
/// Why: a DYNAMIC_ARCH OpenBLAS picks its kernel from a table of CPU models it knew when it was
/// built. A newer CPU it does not know falls back to its oldest kernel (Debian 12's 0.3.21 runs
/// Prescott's SSE3 code on AVX-512 Xeons, at a fifth of the speed). It reads OPENBLAS_CORETYPE
/// once, when the library loads, so the remedy is to set it before that.
public enum BLASKernelPolicy {
    /// What the user asked for with FLEET_BLAS_KERNEL.
    public enum Setting: Equatable, Sendable {
        /// Choose the best verified kernel when OpenBLAS fell below what the CPU supports (the default).
        case auto
        /// Never change OpenBLAS's choice.
        case keep
        /// Run this kernel (still checked first; a kernel that fails its check is an error).
        case pinned(String)

        /// Parses FLEET_BLAS_KERNEL: unset or "auto", "keep", or an OpenBLAS kernel name.
        public init(_ text: String?) throws {
            let value = (text ?? "").trimmingCharacters(in: .whitespaces)
            switch value.lowercased() {
            case "", "auto": self = .auto
            case "keep": self = .keep
            default:
                guard let name = BLASKernelPolicy.canonicalName(value) else {
                    throw BLASKernelError.unknownKernel(value, known: BLASKernelPolicy.levels.keys.sorted())
                }
                self = .pinned(name)
            }
        }
    }

    /// Who decided which kernel runs.
    public enum Source: String, Sendable, Codable {
        /// OpenBLAS's own detection.
        case openblas
        /// fleet chose it (OpenBLAS fell back below the CPU), or FLEET_BLAS_KERNEL pinned it.
        case fleet
        /// OPENBLAS_CORETYPE set by the user.
        case user
    }

    /// What to do at start-up.
    public enum Action: Equatable, Sendable {
        /// Run with the kernel OpenBLAS already has, unchecked.
        case keep
        /// Check these kernels in order (each for correct and for split-invariant products) and run
        /// the first that passes both, else the first correct one; `required`: a candidate that is
        /// not correct is an error (a pinned kernel), not a quiet return to OpenBLAS's choice.
        case check([String], required: Bool)
    }

    public struct Decision: Equatable, Sendable {
        public var action: Action
        public var source: Source
        /// Why, in words a user reads in the run's header.
        public var reason: String
        /// What the header adds after "detected by OpenBLAS" when the kernel is kept.
        public var keptNote: String? = nil
    }

    /// Kernels of OpenBLAS's x86-64 DYNAMIC_ARCH builds (as `openblas_get_corename` spells them) by
    /// the instruction set their sgemm needs: 1 SSE2/3, 2 SSSE3, 3 SSE4.2, 4 AVX, 5 AVX2+FMA, 6 AVX-512.
    public static let levels: [String: Int] = [
        "Katmai": 1, "Coppermine": 1, "Northwood": 1, "Prescott": 1, "Banias": 1, "Athlon": 1, "Opteron": 1, "Opteron_SSE3": 1,
        "Core2": 2, "Penryn": 2, "Dunnington": 2, "Atom": 2, "Nano": 2, "Barcelona": 2, "Bobcat": 2,
        "Nehalem": 3,
        "Sandybridge": 4, "Bulldozer": 4, "Piledriver": 4, "Steamroller": 4,
        "Haswell": 5, "Zen": 5, "Excavator": 5,
        "SkylakeX": 6, "Cooperlake": 6, "SapphireRapids": 6,
    ]

    /// The name as OpenBLAS spells it, matched without regard to case.
    public static func canonicalName(_ name: String) -> String? {
        levels.keys.first { $0.lowercased() == name.lowercased() }
    }

    /// The instruction-set level a CPU supports, on the same scale as `levels`.
    public static func level(of cpu: CPUFeatures) -> Int {
        cpu.hasAVX512 ? 6 : cpu.hasAVX2FMA ? 5 : cpu.has(.avx) ? 4 : cpu.has(.sse42) ? 3 : cpu.has(.ssse3) ? 2 : 1
    }

    /// The kernels worth running on `cpu`, best first. sgemm is all fleet uses, and SkylakeX's is
    /// Cooperlake's and SapphireRapids' too, so the widest build of it comes first; AMD cores get
    /// OpenBLAS's Zen tuning before Haswell's (same instructions, their cache sizes).
    public static func candidates(for cpu: CPUFeatures) -> [String] {
        var list: [String] = []
        if cpu.hasAVX512 { list.append("SkylakeX") }
        if cpu.hasAVX2FMA { list += cpu.isAMD ? ["Zen", "Haswell"] : ["Haswell", "Zen"] }
        if cpu.has(.avx) { list.append("Sandybridge") }
        if cpu.has(.sse42) { list.append("Nehalem") }
        if cpu.has(.ssse3) { list.append("Core2") }
        list.append("Prescott")
        return list
    }

    /// The decision for a CPU whose OpenBLAS chose `detected`, given the user's OPENBLAS_CORETYPE
    /// (nil when unset) and FLEET_BLAS_KERNEL.
    public static func decide(cpu: CPUFeatures, detected: String, userCoretype: String?, setting: Setting) -> Decision {
        if let user = userCoretype, !user.isEmpty {
            return Decision(action: .keep, source: .user, reason: "OPENBLAS_CORETYPE=\(user) set by the user")
        }
        switch setting {
        case .keep:
            return Decision(action: .keep, source: .openblas, reason: "detected by OpenBLAS; FLEET_BLAS_KERNEL=keep",
                            keptNote: "FLEET_BLAS_KERNEL=keep")
        case .pinned(let name):
            if name.lowercased() == detected.lowercased() {
                return Decision(action: .keep, source: .fleet, reason: "FLEET_BLAS_KERNEL=\(name), which OpenBLAS chose too",
                                keptNote: "FLEET_BLAS_KERNEL=\(name)")
            }
            return Decision(action: .check([name], required: true), source: .fleet, reason: "FLEET_BLAS_KERNEL=\(name)")
        case .auto:
            break
        }
        let fits = level(of: cpu)
        guard let had = levels[canonicalName(detected) ?? ""] else {
            // A kernel this table does not know (a newer OpenBLAS, another architecture) is its own business.
            return Decision(action: .keep, source: .openblas, reason: "detected by OpenBLAS")
        }
        let all = candidates(for: cpu)
        guard had < fits else {
            // A kernel that fits is checked first and kept if it passes; kernels of the same or a
            // lower level follow, for a kernel whose products change when split.
            let rest = all.filter { (levels[$0] ?? 0) <= had && $0.lowercased() != detected.lowercased() }
            return Decision(action: .check([canonicalName(detected)!] + rest, required: false), source: .openblas,
                            reason: "detected by OpenBLAS; fits this CPU", keptNote: "fits this CPU's \(levelName(fits))")
        }
        let better = all.filter { (levels[$0] ?? 0) > had }
        return Decision(action: .check(better + [canonicalName(detected)!], required: false), source: .fleet,
                        reason: "OpenBLAS detected \(detected), below this CPU's \(levelName(fits))")
    }

    /// The instruction set of a level, for messages.
    public static func levelName(_ level: Int) -> String {
        ["SSE3", "SSE3", "SSSE3", "SSE4.2", "AVX", "AVX2+FMA", "AVX-512"][max(0, min(level, 6))]
    }
}

public enum BLASKernelError: Error, CustomStringConvertible {
    case unknownKernel(String, known: [String])
    case pinnedKernelFailed(String, reason: String)

    public var description: String {
        switch self {
        case .unknownKernel(let name, let known):
            return "FLEET_BLAS_KERNEL=\(name) is not an OpenBLAS kernel; use auto, keep or one of \(known.joined(separator: ", "))"
        case .pinnedKernelFailed(let name, let reason):
            return "FLEET_BLAS_KERNEL=\(name) cannot run here: \(reason); unset FLEET_BLAS_KERNEL (fleet then chooses a kernel that passes) or pin another"
        }
    }
}
