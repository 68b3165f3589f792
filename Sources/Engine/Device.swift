import Workload
/// An accelerator as the simulator sees it: peak rates, memory and power.
public struct Device: Sendable, Hashable, Codable {
    public enum Precision: String, Sendable, Hashable, Codable, CaseIterable {
        case fp32, tf32, bf16, fp8
        /// Bytes per element of weights and activations in this precision.
        public var bytes: Int { switch self { case .fp32, .tf32: return 4; case .bf16: return 2; case .fp8: return 1 } }
    }

    public var name: String
    /// Dense peak FLOP/s per precision (no sparsity).
    public var peakFLOPs: [Precision: Double]
    public var memoryBandwidth: Bandwidth
    public var memoryBytes: Double
    public var watts: Double
    /// Measured kernel costs and cores (`fleet calibrate`); when present they replace the roofline.
    public var calibration: KernelCalibration?

    public init(name: String, peakFLOPs: [Precision: Double], memoryBandwidth: Bandwidth, memoryBytes: Double, watts: Double) {
        self.name = name
        self.peakFLOPs = peakFLOPs
        self.memoryBandwidth = memoryBandwidth
        self.memoryBytes = memoryBytes
        self.watts = watts
    }

    /// Peak for `precision`, falling back to the next wider precision the device has.
    public func peak(_ precision: Precision) -> Double {
        peakFLOPs[precision] ?? peakFLOPs[.bf16] ?? peakFLOPs[.fp32] ?? 0
    }

    /// Roofline time of an operation: the slower of its FLOPs at `efficiency` of peak and
    /// its memory traffic at the memory bandwidth.
    public func time(flops: FLOPs, bytes: Double, precision: Precision, efficiency: Double) -> SimTime {
        let compute = flops.seconds(at: peak(precision) * efficiency)
        let memory = bytes / memoryBandwidth.bytesPerSecond
        return SimTime(seconds: max(compute, memory))
    }
}

/// Vendors' published dense figures (SXM/OAM parts). `local` is this machine's CPU, a
/// placeholder until `fleet calibrate` measures it.
public enum DeviceCatalog {
    static let tera = 1e12, giga = 1e9, gib = 1024.0 * 1024 * 1024

    public static let a100 = Device(name: "A100", peakFLOPs: [.fp32: 19.5 * tera, .tf32: 156 * tera, .bf16: 312 * tera],
                                    memoryBandwidth: .gigabytesPerSecond(2039), memoryBytes: 80 * gib, watts: 400)
    public static let h100 = Device(name: "H100", peakFLOPs: [.fp32: 67 * tera, .tf32: 495 * tera, .bf16: 989 * tera, .fp8: 1979 * tera],
                                    memoryBandwidth: .gigabytesPerSecond(3350), memoryBytes: 80 * gib, watts: 700)
    public static let h200 = Device(name: "H200", peakFLOPs: [.fp32: 67 * tera, .tf32: 495 * tera, .bf16: 989 * tera, .fp8: 1979 * tera],
                                    memoryBandwidth: .gigabytesPerSecond(4800), memoryBytes: 141 * gib, watts: 700)
    public static let b200 = Device(name: "B200", peakFLOPs: [.fp32: 80 * tera, .tf32: 1100 * tera, .bf16: 2250 * tera, .fp8: 4500 * tera],
                                    memoryBandwidth: .gigabytesPerSecond(8000), memoryBytes: 180 * gib, watts: 1000)
    public static let mi300x = Device(name: "MI300X", peakFLOPs: [.fp32: 163.4 * tera, .tf32: 653.7 * tera, .bf16: 1307.4 * tera, .fp8: 2614.9 * tera],
                                      memoryBandwidth: .gigabytesPerSecond(5300), memoryBytes: 192 * gib, watts: 750)
    public static let local = Device(name: "local", peakFLOPs: [.fp32: 100 * giga], memoryBandwidth: .gigabytesPerSecond(20),
                                     memoryBytes: 24 * gib, watts: 65)

    public static let all = [a100, h100, h200, b200, mi300x, local]

    public static func named(_ name: String) -> Device? { all.first { $0.name.lowercased() == name.lowercased() } }
}
