import Foundation

/// Which BLAS library and kernel this process runs, who chose the kernel and why: what the
/// run's header, its JSON summary and a calibration record say.
public struct BLASKernelReport: Sendable, Equatable, Codable {
    /// The environment variable through which a process that chose a kernel tells the process it
    /// re-executes, and every worker it starts, what it chose: "kernel|detected|note".
    public static let markerVariable = "FLEET_BLAS_CHOSEN"

    public var library: String
    public var version: String?
    /// The kernel running now.
    public var kernel: String
    public var source: BLASKernelPolicy.Source
    /// The kernel OpenBLAS picked by itself, when fleet replaced it.
    public var detected: String?
    /// Why, when there is more to say (a candidate that failed its check, a fallback kept).
    public var note: String?

    public init(library: String, version: String?, kernel: String, source: BLASKernelPolicy.Source, detected: String? = nil, note: String? = nil) {
        self.library = library
        self.version = version
        self.kernel = kernel
        self.source = source
        self.detected = detected
        self.note = note
    }

    /// The marker a choosing process sets before it re-executes itself.
    public static func marker(kernel: String, detected: String, note: String?) -> String {
        [kernel, detected, note ?? ""].map { $0.replacingOccurrences(of: "|", with: "/") }.joined(separator: "|")
    }

    /// What runs in this process, given its environment (OPENBLAS_CORETYPE and fleet's marker).
    public static func current(environment: [String: String]) -> BLASKernelReport {
        describe(kernel: BLAS.coreName, version: BLAS.version, environment: environment)
    }

    /// The report for `kernel` under `environment`; pure, for tests.
    public static func describe(kernel: String, version: String?, environment: [String: String]) -> BLASKernelReport {
        var report = BLASKernelReport(library: "OpenBLAS", version: version, kernel: kernel, source: .openblas)
        let parts = environment[markerVariable].map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) } ?? []
        let chosen = parts.count > 0 && !parts[0].isEmpty ? parts[0] : nil
        let note = parts.count > 2 && !parts[2].isEmpty ? parts[2] : nil
        if let coretype = environment["OPENBLAS_CORETYPE"], !coretype.isEmpty {
            if let chosen, chosen.lowercased() == coretype.lowercased() {
                report.source = .fleet
                report.detected = parts.count > 1 && !parts[1].isEmpty ? parts[1] : nil
                report.note = note
            } else {
                report.source = .user
                report.note = "OPENBLAS_CORETYPE=\(coretype) set by the user"
            }
        } else {
            report.note = note
        }
        return report
    }

    /// One line for a run's header:
    /// "blas: OpenBLAS 0.3.21, kernel SkylakeX (chosen by fleet; OpenBLAS detected Prescott)".
    public var headerLine: String {
        var why: String
        switch source {
        case .fleet: why = "chosen by fleet" + (detected.map { "; OpenBLAS detected \($0)" } ?? "")
        case .user: why = "OPENBLAS_CORETYPE set by the user"
        case .openblas: why = "detected by OpenBLAS"
        }
        if let note, source != .user { why += "; \(note)" }
        return "blas: \(library)\(version.map { " \($0)" } ?? ""), kernel \(kernel) (\(why))"
    }
}
