import Foundation
import Tensor

/// Checks OpenBLAS kernels in child processes (`fleet blas --probe` under OPENBLAS_CORETYPE):
/// a kernel that crashes, computes wrong products or is missing from the build is rejected
/// without harming the process that asked.
public enum BLASKernelProbe {
    /// Checks the candidates in order, each in its own child process: the first whose products
    /// are correct and independent of how they are split wins, else the first correct one.
    public static func choose(from candidates: [String]) -> BLASKernelCache.Verdict {
        var verdict = BLASKernelCache.Verdict(kernel: nil, rejected: [])
        var firstCorrect: (String, BLASKernelCheck.Result)?
        for candidate in candidates {
            switch probe(candidate) {
            case .success(let result) where result.splitInvariant:
                verdict.kernel = candidate
                verdict.gflops = result.flops / 1e9
                verdict.splitInvariant = true
                return verdict
            case .success(let result):
                if firstCorrect == nil { firstCorrect = (candidate, result) }
                verdict.rejected.append(.init(kernel: candidate, reason: "computes other bits when a product is split into pieces"))
            case .failure(let reason):
                verdict.rejected.append(.init(kernel: candidate, reason: reason))
            }
        }
        if let (kernel, result) = firstCorrect {
            // Correct but split-dependent: fast runs are fine, --deterministic will refuse it.
            verdict.kernel = kernel
            verdict.gflops = result.flops / 1e9
            verdict.splitInvariant = false
            verdict.rejected.removeAll { $0.kernel == kernel }
        }
        return verdict
    }

    public enum ProbeOutcome: Sendable { case success(BLASKernelCheck.Result), failure(String) }

    /// Runs `fleet blas --probe` with OPENBLAS_CORETYPE=`kernel` and reads its verdict.
    public static func probe(_ kernel: String, timeout: Double = 60) -> ProbeOutcome {
        let child: ChildProcess.Outcome
        do {
            child = try ChildProcess.bounded("/proc/self/exe", ["blas", "--probe"],
                                             environment: ["OPENBLAS_CORETYPE": kernel, "OPENBLAS_NUM_THREADS": "1", "FLEET_BLAS_KERNEL": "keep"],
                                             unset: [BLASKernelReport.markerVariable], timeout: timeout)
        } catch { return .failure("could not be checked (\(error.localizedDescription))") }
        if child.timedOut { return .failure("did not finish its check within \(Int(timeout)) s") }
        if child.signaled {
            let signal = child.status
            let name = signal == SIGILL ? " (illegal instruction: this CPU lacks instructions it uses)" : signal == SIGSEGV ? " (segmentation fault)" : ""
            return .failure("crashed in its check with signal \(signal)\(name)")
        }
        guard child.status == 0,
              let line = child.stdout.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(BLASKernelCheck.Result.self, from: Data(line.utf8)) else {
            return .failure("check exited with status \(child.status) and no verdict")
        }
        guard result.kernel.lowercased() == kernel.lowercased() else {
            return .failure("is not in this OpenBLAS build (it ran \(result.kernel) instead)")
        }
        if let failure = result.failure { return .failure("computed a wrong result: \(failure)") }
        return .success(result)
    }
}
