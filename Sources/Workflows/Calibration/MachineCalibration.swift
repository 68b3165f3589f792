import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Training
import Workload

/// `fleet calibrate`'s measurements of this machine: kernels at the model's product shapes,
/// real one-process steps, memory, storage, and (through child processes) each transport.
/// Lines describing each measurement go to `progress` as they are taken.
public struct MachineCalibration {
    public var model: ModelSpec
    public var batch: Int
    public var repeats: Int
    /// Layouts whose product shapes are measured.
    public var layouts: [ParallelLayout]
    /// Where checkpoints would be written (its write bandwidth is measured).
    public var storageDirectory = "."
    /// The transport whose figures become the scenario's fabric.
    public var fabric = "zmq"
    /// Seconds a transport-measuring worker waits for a peer.
    public var timeout = 60.0
    /// A directory every host sees (the scenario's, as an absolute path): where workers on
    /// other hosts leave their figures.
    public var resultDirectory = FileManager.default.currentDirectoryPath
    public var progress: (String) -> Void = { _ in }
    /// Transient status (a terminal line overwritten by the next).
    public var status: (String) -> Void = { _ in }

    public init(model: ModelSpec, batch: Int, repeats: Int, layouts: [ParallelLayout]) {
        self.model = model
        self.batch = batch
        self.repeats = repeats
        self.layouts = layouts
    }

    /// The distinct product shapes of every stage of every layout at this batch.
    public func shapes() throws -> [GEMMShape] {
        var found = Set<GEMMShape>()
        for layout in layouts {
            try layout.validate(model: model, batch: batch)
            for work in KernelWork.stages(model: model, layout: layout, batch: batch, sequence: model.context) {
                found.formUnion(work.forward.gemms.keys)
                found.formUnion(work.backward.gemms.keys)
            }
        }
        return found.sorted()
    }

    /// Kernels, memory and storage, in this process (one thread).
    public func measureMachine() throws -> CalibrationResult {
        BLAS.setThreads(1)
        var result = CalibrationResult(model: model, batch: batch, sequence: model.context,
                                       cores: WorldSetup.usableCores, repeats: repeats)
        result.fabricTransport = fabric
        result.storageDirectory = storageDirectory
        // Repeats are taken in rounds, each round timing every kernel once and then four real
        // training steps: a slow minute then shows in every kernel's round alike (compare draws
        // whole rounds) instead of biasing the kernels measured during it, and each step's
        // in-step factor is over its own round's kernels, measured in the same minute.
        let bench = KernelBenchmark(model: model, sequence: model.context, repeats: 1)
        let shapes = try shapes()
        progress("calibrating \(model.name) on \(result.cores) core(s), \(repeats) rounds of every kernel and 4 training steps")
        let steps = try InStepSampler(model: model, batch: batch, rounds: repeats)
        var gemm: [GEMMShape: [Double]] = [:], kernels: [ElementKernel: [Double]] = [:]
        for round in 0..<repeats {
            for (i, shape) in shapes.enumerated() {
                gemm[shape, default: []].append(bench.gemm(shape).median)
                status("  round \(round + 1)/\(repeats): sgemm \(i + 1)/\(shapes.count) \(shape)")
            }
            for kernel in ElementKernel.allCases { kernels[kernel, default: []].append(bench.element(kernel).median) }
            status("  round \(round + 1)/\(repeats): training steps")
            try steps.sample(against: KernelCalibration(gemm: gemm.mapValues { $0[round] }, perElement: kernels.mapValues { $0[round] }, cores: 1))
        }
        result.gemm = gemm.mapValues(Measurement.init)
        result.kernels = kernels.mapValues(Measurement.init)
        let rates = result.gemm.values.map(\.median)
        progress("  sgemm: \(shapes.count) shapes, \(String(format: "%.2f–%.2f", (rates.min() ?? 0) / 1e9, (rates.max() ?? 0) / 1e9)) GFLOP/s")
        for kernel in ElementKernel.allCases {
            guard let time = result.kernels[kernel] else { continue }
            progress("  \(kernel.rawValue): \(String(format: "%.3f", time.median * 1e9)) ns/element (\(time.spreadText))")
        }
        measureContention(&result)
        result.inStep = Measurement(steps.ratios)
        result.isolatedOptimizer = result.kernels[.optimizer]
        let perParameter = Measurement(steps.rest.map { $0 / Double(model.parameterCount) })
        result.kernels[.optimizer] = perParameter
        progress(String(format: "  one-process steps: forward+backward %.2f ms = %.3f × the kernels alone (each over its own round's kernels); the rest %.2f ms (%.2f ns per parameter)",
                        StepLogs.median(steps.compute) * 1000, result.inStep.median, StepLogs.median(steps.rest) * 1000, perParameter.median * 1e9))
        result.memoryBandwidth = Self.memoryBandwidth(repeats: repeats)
        (result.storageBandwidth, result.storageLatency) = try Self.storage(directory: storageDirectory, repeats: repeats)
        progress(String(format: "  memory: %.2f GB/s; storage: %.3f GB/s, %.0f µs per synced small write", result.memoryBandwidth.median / 1e9,
                        result.storageBandwidth.median / 1e9, result.storageLatency.median * 1e6))
        return result
    }

    /// A training step's forward and backward on each core alone and on every core at once (`CoreContention`).
    func measureContention(_ result: inout CalibrationResult) {
        guard result.cores > 1 else { return }
        let heaviest = result.gemm.keys.sorted { ($0.flops.count, "\($0)") > ($1.flops.count, "\($1)") }.prefix(3)
        var contention = CoreContention(shapes: Array(heaviest), rates: { result.gemm[$0]?.median ?? 1e9 }, rounds: repeats, cores: result.cores)
        // A real step's mix: its memory-bound kernels (norms, attention, GELU) share the memory
        // bus and caches where the products mostly do not (here both read 1.00–1.03).
        contention.steps = (model, batch)
        let measured = contention.measure()
        result.contention = measured.contention
        result.contentionRounds = Measurement(measured.slowdowns)
        result.coreSpeeds = measured.speeds
        result.coreSteps = measured.best
        progress(String(format: "  all %d cores computing at once: each %.3f × its time alone (best of %d rounds; the rounds' own ratios %@); each core alone: %@ × the mean",
                        result.cores, measured.contention, repeats, result.contentionRounds.spreadText,
                        measured.speeds.map { String(format: "%.2f", $0) }.joined(separator: ", ")))
    }

    /// A transport's figures from `ranks` worker processes running `fleet calibrate
    /// --measure-transport`: ZeroMQ self-launched, MPI through mpirun; on `hosts` (`A:1,B:1`)
    /// when given, else on this machine. nil when mpirun is missing.
    public func measureTransport(_ name: String, ranks: Int, hosts: String? = nil) throws -> TransportFigures? {
        // Rank 0 writes the figures: on other hosts, into a directory they all see (the scenario's).
        let directory = hosts == nil ? NSTemporaryDirectory() : resultDirectory + "/"
        let file = directory + ".fleet-calibrate-\(getpid())-\(name)-\(ranks).json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let arguments = ["calibrate", model.name, "--measure-transport", name, "--result-file", file, "--repeats", "\(repeats)", "--timeout", "\(timeout)",
                         "--host-cores", "\(WorldSetup.usableCores)"]
        let run: (status: Int32, stdout: String, stderr: String)
        if name == "mpi" {
            guard let mpirun = ChildProcess.mpirun(ranks: ranks, pinned: true, hosts: hosts, arguments + ["--transport", "mpi"]) else {
                progress("  mpi: mpirun is not on PATH, not measured")
                return nil
            }
            run = try ChildProcess.run(mpirun.path, mpirun.arguments, environment: mpirun.environment)
        } else {
            run = try ChildProcess.fleet(arguments + ["--transport", "zmq", "--ranks", "\(ranks)"] + (hosts.map { ["--hosts", $0] } ?? []),
                                         environment: ["FLEET_PIN_CORES": "1"])
        }
        guard run.status == 0, let data = FileManager.default.contents(atPath: file) else {
            throw FleetError("measuring \(name) failed (exit \(run.status)): \(run.stderr.suffix(600))", duringRun: true)
        }
        let figures = try JSONDecoder().decode(TransportFigures.self, from: data)
        let placement = hosts.map { " on \($0) (\(figures.path))" } ?? ""
        var line = String(format: "  %@, %d ranks%@: α %.1f µs, β %.3f GB/s", figures.transport, ranks, placement, figures.alpha * 1e6, figures.beta / 1e9)
        if let wait = figures.meetingWait { line += String(format: "; a pair all-reduce between compute waits %.1f µs more", wait * 1e6) }
        progress(line)
        return figures
    }

    /// One rank of `measureTransport`'s workers: every algorithm over `transport` (MPI's own
    /// too where it is MPI); rank 0 writes the figures as JSON to `resultFile`.
    public func measureTransportAsRank(_ transport: Transport, resultFile: String?, cores: Int) throws {
        var algorithms: [AllReduceAlgorithm] = [.ring, .halvingDoubling, .tree, .naive]
        if transport.mpi != nil { algorithms.append(.native) }
        let figures = try TransportFigures.measure(on: transport, repeats: repeats, algorithms: algorithms, cores: cores)
        if transport.rank == 0, let resultFile {
            try JSONEncoder().encode(figures).write(to: URL(fileURLWithPath: resultFile))
        }
    }

    /// `fleet calibrate` under mpirun: every rank measures MPI across the allocation; rank 0
    /// also measures its machine and returns the result (other ranks nil).
    public func measureUnderMPIRun(_ transport: Transport) throws -> CalibrationResult? {
        var figures = try TransportFigures.measure(on: transport, repeats: repeats, algorithms: [.ring, .halvingDoubling, .tree, .naive, .native])
        guard transport.rank == 0 else { return nil }
        var result = try measureMachine()
        figures.transport = "mpi"
        result.transports = [figures]
        result.fabricTransport = "mpi"
        return result
    }

    /// Writes the scenario and checks that it reads back as one.
    public static func write(_ result: CalibrationResult, to path: String) throws {
        try FileManager.default.createDirectory(atPath: PathName.directory(of: path), withIntermediateDirectories: true)
        try result.yaml().write(toFile: path, atomically: true, encoding: .utf8)
        _ = try ScenarioReader(path: path).read()
    }

    public static func memoryBandwidth(repeats: Int) -> Measurement {
        let count = 64 << 20
        let a = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64), b = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, count)
        memset(b, 2, count)
        // One copy per sample, alternating direction, so no copy can be folded into another.
        let samples = (0..<repeats * 2).map { i in
            2 * Double(count) / Measurement.clock { if i % 2 == 0 { memcpy(b, a, count) } else { memcpy(a, b, count) } }
        }
        return Measurement(samples)
    }

    /// Bandwidth of writing and fsyncing 64 MiB, and the time of a small synced write + rename.
    public static func storage(directory: String, repeats: Int) throws -> (Measurement, Measurement) {
        let path = (directory as NSString).appendingPathComponent(".fleet-calibrate-\(getpid())")
        defer { unlink(path); unlink(path + ".tmp") }
        let size = 64 << 20
        let data = [UInt8](repeating: 7, count: size)
        func write(_ bytes: Int, to file: String) throws {
            let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw FleetError("cannot write in \(directory) (\(String(cString: strerror(errno)))); pass --storage-dir with a writable directory") }
            defer { close(fd) }
            var done = 0
            while done < bytes {
                let n = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, min(1 << 20, bytes - done)) }
                guard n > 0 else { throw FleetError("writing in \(directory) failed: \(String(cString: strerror(errno)))", duringRun: true) }
                done += n
            }
            fsync(fd)
        }
        var rates: [Double] = [], latencies: [Double] = []
        for _ in 0..<repeats {
            rates.append(Double(size) / (try Measurement.clock { try write(size, to: path) }))
            latencies.append(try Measurement.clock {
                try write(4096, to: path + ".tmp")
                rename(path + ".tmp", path)
            })
        }
        return (Measurement(rates), Measurement(latencies))
    }
}
