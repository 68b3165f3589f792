// swift-tools-version:6.0
import PackageDescription

// fleet runs on Linux (its C shims use Linux system calls: prctl, futexes, process_vm_readv),
// so no Apple platform is declared. Pure planning/simulation modules never depend on the C
// targets; only `Fleet` parses arguments and prints.
// Kernels are plain Swift loops: release builds drop bounds checks and, on x86-64, may use
// AVX2/FMA-era instructions (Haswell, 2013, and later), which doubles their vector width.
#if arch(x86_64)
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release))]
#else
let optimize: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
#endif

let package = Package(
    name: "fleet",
    products: [
        .executable(name: "fleet", targets: ["Fleet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries, found through pkg-config where Debian's .pc files are usable.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CZMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFleetSys"),

        .target(name: "Workload", swiftSettings: [.swiftLanguageMode(.v6)]),
        // What a rank actually ran, op by op, per thread: for plan-vs-reality tests and traces.
        .target(name: "OpLog", swiftSettings: [.swiftLanguageMode(.v6)]),
        // Pure plans shared by the trainer and the simulator: no transports, tensors or C.
        .target(name: "Parallelism", dependencies: ["Workload"], swiftSettings: [.swiftLanguageMode(.v6)]),
        // The discrete-event simulator: pure Swift (no transports, tensors or C).
        .target(name: "Engine", dependencies: ["Parallelism", "Workload", .product(name: "HeapModule", package: "swift-collections"),
                                               .product(name: "Yams", package: "Yams")], swiftSettings: optimize + [.swiftLanguageMode(.v6)]),
        .target(name: "Collectives", dependencies: ["CMPI", "CZMQ", "CFleetSys", "Parallelism", "OpLog"], swiftSettings: optimize + [.swiftLanguageMode(.v6)]),
        // Faults as data, a Transport decorator, and the process, numeric and storage faults the trainer injects.
        .target(name: "FaultInjection", dependencies: ["Collectives"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CFleetSys", "OpLog"], swiftSettings: optimize + [.swiftLanguageMode(.v6)]),
        .target(name: "Training", dependencies: ["Tensor", "Collectives", "Parallelism", "Workload", "FaultInjection", "CFleetSys", "OpLog"], swiftSettings: optimize + [.swiftLanguageMode(.v6)]),
        // What fleet does beyond one command: calibrate, compare, supervise, chaos campaigns, run
        // records and child processes, as functions that return values (the CLI only prints them).
        .target(name: "Workflows", dependencies: ["Collectives", "Training", "Tensor", "Workload", "Parallelism", "Engine", "FaultInjection"],
                swiftSettings: optimize + [.swiftLanguageMode(.v6)]),
        // `fleet lab`: Volume II's exercises — questions, experiments on real ranks and the
        // simulator, reference answers computed by fleet, grading.
        // (LabTests hold each exercise's closed forms to the textbook: -enable-testing, as for Fleet.)
        .target(name: "Lab", dependencies: ["Workflows", "Engine", "Training", "Parallelism", "Workload", "Collectives"],
                swiftSettings: [.swiftLanguageMode(.v6), .unsafeFlags(["-enable-testing"])]),
        .executableTarget(
            name: "Fleet",
            dependencies: [
                "Lab", "Workflows", "Collectives", "Training", "Tensor", "Workload", "Parallelism", "Engine", "FaultInjection",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            // FleetTests parse command lines in-process (the flag fuzzer); release builds
            // otherwise hide the CLI's internal types from @testable import.
            swiftSettings: [.unsafeFlags(["-enable-testing"])]),

        .testTarget(name: "CollectivesTests", dependencies: ["Collectives", "Parallelism"]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
        .testTarget(name: "ParallelismTests", dependencies: ["Parallelism", "Workload"]),
        .testTarget(name: "FaultInjectionTests", dependencies: ["FaultInjection", "Collectives"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Parallelism", "Workload"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Tensor", "Workload", "Collectives", "Engine", "OpLog"]),
        // Runs the real `fleet` binary (self-launched ZeroMQ workers and mpirun).
        .testTarget(name: "FleetTests", dependencies: ["Fleet", "Workload", "Engine"]),
        .testTarget(name: "WorkflowsTests", dependencies: ["Workflows", "Training", "Workload", "Parallelism", "Engine"]),
        .testTarget(name: "LabTests", dependencies: ["Lab", "Workflows"]),
    ],
    swiftLanguageModes: [.v5]
)
