import CFleetSys
import Foundation

/// What this CPU can run, read from cpuid and the operating system (not from what a library
/// concluded): the instruction sets that decide which BLAS kernel fits, and the figures that
/// give a kernel-independent peak.
public struct CPUFeatures: Sendable, Hashable, Codable {
    /// Instruction-set extensions that matter to sgemm kernels, usable (the OS saves their registers).
    public enum Extension: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
        case sse3, ssse3, sse41 = "sse4.1", sse42 = "sse4.2", avx, fma, avx2
        case avx512f, avx512bw, avx512dq, avx512vl, avx512bf16, amx
        public static func < (a: Extension, b: Extension) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    public var vendor: String
    public var family: Int
    public var model: Int
    public var stepping: Int
    public var brand: String
    public var extensions: Set<Extension>
    /// The clock a peak is stated at, GHz (maximum frequency where the OS knows it, else the
    /// nominal one), and where it came from; nil when unknown.
    public var clockGHz: Double?
    public var clockSource: String?

    public init(vendor: String, family: Int, model: Int, stepping: Int = 0, brand: String = "",
                extensions: Set<Extension>, clockGHz: Double? = nil, clockSource: String? = nil) {
        self.vendor = vendor
        self.family = family
        self.model = model
        self.stepping = stepping
        self.brand = brand
        self.extensions = extensions
        self.clockGHz = clockGHz
        self.clockSource = clockSource
    }

    public func has(_ e: Extension) -> Bool { extensions.contains(e) }

    /// Full AVX-512 as sgemm kernels for it need: foundation plus byte/word, doubleword/quadword and vector-length forms.
    public var hasAVX512: Bool { [.avx512f, .avx512bw, .avx512dq, .avx512vl].allSatisfy(has) }
    public var hasAVX2FMA: Bool { has(.avx2) && has(.fma) }
    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }

    /// Float32 lanes of the widest vector this CPU can multiply-add.
    public var float32Lanes: Int { hasAVX512 ? 16 : has(.avx) ? 8 : 4 }

    /// FLOP per cycle per core for Float32: lanes × 2 (a fused multiply-add) × 2 vector FMA
    /// units — what current server cores (Intel since Haswell, AMD since Zen 2) issue per cycle;
    /// older or smaller cores issue fewer, so this is a ceiling, never an underestimate.
    public var float32FLOPsPerCycle: Int { float32Lanes * 2 * 2 }

    /// The kernel-independent peak of `threads` cores in FLOP/s, when the clock is known.
    public func peakFLOPs(threads: Int) -> Double? {
        clockGHz.map { Double(threads * float32FLOPsPerCycle) * $0 * 1e9 }
    }

    /// A short description: "AMD EPYC (family 25, model 17): AVX2+FMA, 2.60 GHz nominal".
    public var summary: String {
        let isa = hasAVX512 ? "AVX-512" : hasAVX2FMA ? "AVX2+FMA" : has(.avx) ? "AVX" : has(.sse42) ? "SSE4.2" : "SSE"
        let clock = clockGHz.map { String(format: ", %.2f GHz %@", $0, clockSource ?? "") } ?? ""
        return "\(brand.isEmpty ? vendor : brand) (family \(family), model \(model)): \(isa)\(clock)"
    }

    /// A key that changes whenever the choice of kernel could: vendor, family, model, stepping and usable extensions.
    public var identity: String {
        "\(vendor)/\(family)/\(model)/\(stepping)/" + extensions.sorted().map(\.rawValue).joined(separator: ",")
    }

    /// This machine's CPU.
    public static let current: CPUFeatures = read()

    private static func read() -> CPUFeatures {
        func cpuid(_ leaf: UInt32, _ sub: UInt32 = 0) -> [UInt32] {
            var r: [UInt32] = [0, 0, 0, 0]
            _ = r.withUnsafeMutableBufferPointer { fleet_cpuid(leaf, sub, $0.baseAddress) }
            return r
        }
        func bit(_ word: UInt32, _ n: Int) -> Bool { word & (1 << UInt32(n)) != 0 }
        func text(_ words: [UInt32]) -> String {
            let bytes = words.flatMap { w in (0..<4).map { UInt8((w >> (8 * UInt32($0))) & 0xff) } }
            return String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }
        let zero = cpuid(0)
        let vendor = text([zero[1], zero[3], zero[2]])
        let one = cpuid(1), seven = cpuid(7), sevenOne = cpuid(7, 1)
        let baseFamily = Int((one[0] >> 8) & 0xf), baseModel = Int((one[0] >> 4) & 0xf)
        let family = baseFamily == 0xf ? baseFamily + Int((one[0] >> 20) & 0xff) : baseFamily
        let model = baseFamily == 0x6 || baseFamily == 0xf ? baseModel + (Int((one[0] >> 16) & 0xf) << 4) : baseModel
        let xcr0 = fleet_xgetbv0()
        let osAVX = xcr0 & 0x6 == 0x6, osAVX512 = xcr0 & 0xe6 == 0xe6, osAMX = xcr0 & 0x60000 == 0x60000
        var e: Set<Extension> = []
        if bit(one[2], 0) { e.insert(.sse3) }
        if bit(one[2], 9) { e.insert(.ssse3) }
        if bit(one[2], 19) { e.insert(.sse41) }
        if bit(one[2], 20) { e.insert(.sse42) }
        if osAVX && bit(one[2], 28) { e.insert(.avx) }
        if osAVX && bit(one[2], 12) { e.insert(.fma) }
        if osAVX && bit(seven[1], 5) { e.insert(.avx2) }
        if osAVX512 {
            if bit(seven[1], 16) { e.insert(.avx512f) }
            if bit(seven[1], 17) { e.insert(.avx512dq) }
            if bit(seven[1], 30) { e.insert(.avx512bw) }
            if bit(seven[1], 31) { e.insert(.avx512vl) }
            if bit(sevenOne[0], 5) { e.insert(.avx512bf16) }
        }
        if osAMX && bit(seven[3], 24) && bit(seven[3], 25) { e.insert(.amx) }
        let brand = text(cpuid(0x8000_0002) + cpuid(0x8000_0003) + cpuid(0x8000_0004))
        let (clock, source) = readClock(brand: brand)
        return CPUFeatures(vendor: vendor, family: family, model: model, stepping: Int(one[0] & 0xf), brand: brand,
                           extensions: e, clockGHz: clock, clockSource: source)
    }

    /// The highest clock the OS reports (cpufreq), else the one in the brand string ("@ 2.10GHz"),
    /// else /proc/cpuinfo's "cpu MHz" (in a virtual machine usually the nominal clock).
    private static func readClock(brand: String) -> (Double?, String?) {
        if let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding: .utf8),
           let khz = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), khz > 0 {
            return (khz / 1e6, "maximum")
        }
        if let at = brand.range(of: "@"), let ghz = Double(brand[at.upperBound...].trimmingCharacters(in: .whitespaces)
            .replacingOccurrences(of: "GHz", with: "").trimmingCharacters(in: .whitespaces)), ghz > 0 {
            return (ghz, "nominal")
        }
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("cpu MHz") }),
           let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), value > 0 {
            return (value / 1000, "nominal")
        }
        return (nil, nil)
    }
}
