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

    /// Runs before argument parsing. Returns normally when the process keeps its kernel;
    /// otherwise it does not return (the process re-executes itself).
    static func prepare(arguments: [String] = CommandLine.arguments, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard arguments.count > 1, computing.contains(arguments[1]), !arguments.contains("--probe"),
              (environment[BLASKernelReport.markerVariable] ?? "").isEmpty else { return }
        let choice: BLASKernelChoice
        do { choice = try BLASKernelChoice(environment: environment) } catch {
            Console.err("fleet: error: \(error)")
            exit(2)
        }
        switch choice {
        case .keep(let marker):
            if let marker { setenv(BLASKernelReport.markerVariable, marker, 1) }
        case let .restart(kernel, marker, detected):
            setenv("OPENBLAS_CORETYPE", kernel, 1)
            setenv(BLASKernelReport.markerVariable, marker, 1)
            reexecute(arguments)
            // Only reached when exec failed: go on with OpenBLAS's own kernel, and say so.
            Console.err("fleet: warning: could not restart with OpenBLAS kernel \(kernel) (\(String(cString: strerror(errno)))); running \(BLAS.coreName)")
            unsetenv("OPENBLAS_CORETYPE")
            setenv(BLASKernelReport.markerVariable, BLASKernelReport.marker(kernel: "", detected: detected, note: "restart with \(kernel) failed"), 1)
        }
    }

    /// Replaces this process's image with a fresh one of the same binary and arguments.
    private static func reexecute(_ arguments: [String]) {
        fflush(nil)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
    }
}
