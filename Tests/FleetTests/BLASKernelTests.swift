import Foundation
import XCTest

/// The kernel choice through the real binary: what OpenBLAS is left with by default, a user's
/// OPENBLAS_CORETYPE, the choosing path (emulated OpenBLAS fallback: checks in child processes,
/// a crashing candidate, the re-exec), and workers that run what their launcher chose.
final class BLASKernelTests: FleetProcessTestCase {
    /// Kernels that use less than AVX2: what an OpenBLAS that does not know the CPU falls back to.
    static let fallbackKernels: Set<String> = ["Prescott", "Katmai", "Coppermine", "Northwood", "Banias", "Core2", "Penryn",
                                               "Dunnington", "Nehalem", "Atom", "Nano", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat"]

    /// A clean environment for the choice: no OPENBLAS_CORETYPE from the machine, a fresh verdict cache.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ["OPENBLAS_CORETYPE": "", "FLEET_CACHE_DIR": directory + "/cache", "FLEET_BLAS_KERNEL": "auto", "FLEET_BLAS_CHOSEN": ""]
            .merging(extra) { _, new in new }
    }

    /// The summary object (the last JSON line) of `fleet train … --json`.
    func summary(_ outcome: FleetProcess.Outcome) throws -> [String: Any] {
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let line = try XCTUnwrap(outcome.stdout.split(separator: "\n").last, outcome.output)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], outcome.output)
    }

    var cpuFlags: String {
        ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n").first { $0.hasPrefix("flags") }.map(String.init) ?? ""
    }
    var hasAVX2: Bool { cpuFlags.contains(" avx2") && cpuFlags.contains(" fma") }
    var hasAVX512: Bool { ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy { cpuFlags.contains(" \($0)") } }

    func testDefaultRunsNoFallbackKernelAndIsReproducible() throws {
        try XCTSkipUnless(hasAVX2, "this CPU has no AVX2+FMA: every OpenBLAS kernel it can run is a fallback kernel")
        // OPENBLAS_CORETYPE is set empty above; fleet treats that as unset (so does OpenBLAS's loader
        // after fleet re-executes with its choice).
        var env = environment()
        env.removeValue(forKey: "OPENBLAS_CORETYPE")
        let first = try FleetProcess.run("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE", FleetProcess.binary, "train", "gpt-tiny", "--steps", "3", "--json"],
                                         environment: env, timeout: 120)
        let s = try summary(first)
        let kernel = try XCTUnwrap(s["blas_kernel"] as? String)
        XCTAssertFalse(Self.fallbackKernels.contains(kernel), "default run uses fallback kernel \(kernel): \(first.stdout)")
        XCTAssertTrue(["openblas", "fleet"].contains(s["blas_kernel_source"] as? String ?? ""), first.stdout)
        XCTAssertGreaterThan(s["cpu_peak_gflops"] as? Double ?? 0, 0, "the CPU's clock is known on this machine kind")
        // Losses repeat bit for bit under the chosen kernel.
        let second = try FleetProcess.run("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE", FleetProcess.binary, "train", "gpt-tiny", "--steps", "3", "--json"],
                                          environment: env, timeout: 120)
        XCTAssertEqual(try summary(second)["blas_kernel"] as? String, kernel)
        let losses = { (o: FleetProcess.Outcome) in o.stdout.split(separator: "\n").compactMap { line -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let loss = object["loss"] as? Double else { return nil }
            return String(loss.bitPattern, radix: 16)
        } }
        XCTAssertEqual(losses(first).count, 3)
        XCTAssertEqual(losses(first), losses(second))
        // The header names the library, version and kernel.
        let human = try FleetProcess.run("/usr/bin/env", ["-u", "OPENBLAS_CORETYPE", FleetProcess.binary, "train", "gpt-tiny", "--steps", "1"],
                                         environment: env, timeout: 120)
        XCTAssertTrue(human.stdout.contains("blas: OpenBLAS") && human.stdout.contains("kernel \(kernel)"), human.stdout)
    }

    func testUserCoretypeWins() throws {
        // Prescott runs on every x86-64 CPU: the user may choose it, and fleet must not override it.
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--json"], environment: environment(["OPENBLAS_CORETYPE": "Prescott"]))
        let s = try summary(outcome)
        XCTAssertEqual(s["blas_kernel"] as? String, "Prescott", outcome.stdout)
        XCTAssertEqual(s["blas_kernel_source"] as? String, "user", outcome.stdout)
        // FLEET_BLAS_KERNEL does not beat it either.
        let pinned = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1", "--json"],
                                            environment: environment(["OPENBLAS_CORETYPE": "Prescott", "FLEET_BLAS_KERNEL": "Haswell"]))
        XCTAssertEqual(try summary(pinned)["blas_kernel"] as? String, "Prescott", pinned.stdout)
    }

    func testFallbackIsReplacedByACheckedKernelThatWorkersShare() throws {
        try XCTSkipUnless(hasAVX2, "this CPU has no AVX2+FMA: no kernel is better than the fallback")
        // Emulate an OpenBLAS that fell back to Prescott, and claim AVX-512: on a CPU without it the
        // SkylakeX candidate dies of an illegal instruction in its check child, and fleet moves on.
        let env = environment(["FLEET_BLAS_ASSUME_DETECTED": "Prescott", "FLEET_BLAS_ASSUME_AVX512": "1"])
        let one = try summary(try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "2", "--json"], environment: env))
        let kernel = try XCTUnwrap(one["blas_kernel"] as? String)
        XCTAssertEqual(one["blas_kernel_source"] as? String, "fleet")
        XCTAssertEqual(one["blas_kernel_detected"] as? String, "Prescott")
        // The chosen kernel computes correct and split-invariant products (SkylakeX on a CPU with
        // AVX-512 when it passes); where SkylakeX cannot run, the note says why it was passed over.
        let check = try summary(try FleetProcess.fleet(["blas", "--json"], environment: env))
        XCTAssertEqual(check["blas_kernel"] as? String, kernel)
        XCTAssertEqual(check["check_passed"] as? Bool, true)
        XCTAssertEqual(check["split_invariant"] as? Bool, true, "\(check)")
        if !hasAVX512 {
            XCTAssertNotEqual(kernel, "SkylakeX")
            let note = one["blas_kernel_note"] as? String ?? ""
            XCTAssertTrue(note.contains("SkylakeX crashed") && note.contains("illegal instruction"), note)
        }
        // The verdict is cached: a second start checks nothing and says the same.
        let cache = try String(contentsOfFile: directory + "/cache/blas-kernels.json", encoding: .utf8)
        XCTAssertTrue(cache.contains("\"kernel\" : \"\(kernel)\""), cache)
        // Self-launched workers and mpirun ranks run what the launcher chose.
        let launched = try summary(try FleetProcess.fleet(["train", "gpt-tiny", "--dp", "2", "--steps", "2", "--json", "--run-dir", directory + "/zmq"],
                                                          environment: env))
        XCTAssertEqual(launched["blas_kernels"] as? [String], [kernel, kernel])
        XCTAssertEqual(launched["blas_kernel_source"] as? String, "fleet")
        let mpi = try summary(try FleetProcess.mpirun(2, ["train", "gpt-tiny", "--dp", "2", "--steps", "2", "--json"], environment: env))
        XCTAssertEqual(mpi["blas_kernels"] as? [String], [kernel, kernel])
        XCTAssertEqual(mpi["blas_kernel_source"] as? String, "fleet")
    }

    func testPinnedKernelIsCheckedAndBadNamesRefused() throws {
        let bogus = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1"], environment: environment(["FLEET_BLAS_KERNEL": "Pentium4"]))
        XCTAssertEqual(bogus.status, 2, bogus.output)
        XCTAssertTrue(bogus.stderr.contains("FLEET_BLAS_KERNEL=Pentium4 is not an OpenBLAS kernel"), bogus.stderr)
        let pinned = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "1", "--json"], environment: environment(["FLEET_BLAS_KERNEL": "SkylakeX"]))
        if hasAVX512 {
            XCTAssertEqual(try summary(pinned)["blas_kernel"] as? String, "SkylakeX")
        } else {
            XCTAssertEqual(pinned.status, 2, pinned.output)
            XCTAssertTrue(pinned.stderr.contains("FLEET_BLAS_KERNEL=SkylakeX cannot run here") && pinned.stderr.contains("illegal instruction"), pinned.stderr)
        }
        // Commands that never compute do not check anything.
        let plan = try FleetProcess.fleet(["plan", "gpt-tiny"], environment: environment(["FLEET_BLAS_KERNEL": "Pentium4"]))
        XCTAssertEqual(plan.status, 0, plan.output)
    }

    /// fleet's threads split products over rows; with the kernel fleet chooses, the thread count
    /// changes no bit of the run (the in-process test can only check the kernel its process loaded).
    func testThreadCountChangesNoBit() throws {
        let losses = { (threads: Int) throws -> [String] in
            let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--steps", "3", "--batch", "4", "--threads", "\(threads)", "--json"], environment: self.environment())
            XCTAssertEqual(outcome.status, 0, outcome.output)
            return outcome.stdout.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"].map { "\($0)" }
            }
        }
        let one = try losses(1)
        XCTAssertEqual(one.count, 3)
        XCTAssertEqual(one, try losses(2))
    }

    func testDeterministicModeRefusesASplitDependentKernel() throws {
        // A kernel whose products change when split, pinned by the user, cannot give every layout
        // the single-process bits: --deterministic says so before any work.
        let kernels = ["Haswell", "Zen", "Prescott", "Core2", "Nehalem", "Sandybridge"]
        var found: String?
        for kernel in kernels {
            let check = try summary(try FleetProcess.fleet(["blas", "--json"], environment: environment(["OPENBLAS_CORETYPE": kernel])))
            if check["blas_kernel"] as? String == kernel, check["split_invariant"] as? Bool == false { found = kernel; break }
        }
        guard let kernel = found else { throw XCTSkip("every OpenBLAS kernel tried here is split-invariant: nothing to refuse") }
        let outcome = try FleetProcess.fleet(["train", "gpt-tiny", "--deterministic", "--steps", "1"], environment: environment(["OPENBLAS_CORETYPE": kernel]))
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("--deterministic needs a BLAS kernel") && outcome.stderr.contains(kernel), outcome.stderr)
    }

    func testBlasCommandDescribesTheKernel() throws {
        let outcome = try FleetProcess.fleet(["blas", "--json"], environment: environment())
        let s = try summary(outcome)
        XCTAssertEqual(s["check_passed"] as? Bool, true)
        XCTAssertEqual(s["library"] as? String, "OpenBLAS")
        XCTAssertGreaterThan(s["sgemm_gflops"] as? Double ?? 0, 0)
    }
}
