import ArgumentParser
import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Training
import Workload

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine (kernels, transports, storage) and write a scenario the simulator can predict real runs with.",
        discussion: """
        Measures one-thread sgemm for every product shape the model issues in the layouts of `fleet compare`, the other kernels per element, real one-process steps, point-to-point α and β, all-reduce times and waits under load for ZeroMQ and (when mpirun is installed) MPI, and checkpoint write bandwidth.

        Examples:
          fleet calibrate                           # writes scenarios/local.yaml
          fleet calibrate gpt-tiny --repeats 9 --out my-machine.yaml
          mpirun -H a,b -n 2 fleet calibrate --out cluster.yaml
        """)

    @Argument(help: "Model whose kernels are measured: \(ModelCatalog.trainable.map(\.name).joined(separator: ", ")).")
    var model: ModelSpec = ModelCatalog.gptTiny

    @Option(help: "Scenario file to write.")
    var out: String = "scenarios/local.yaml"

    @Option(help: "Repeats of every measurement (the median is kept, the spread reported).")
    var repeats: Int = 5

    @Option(help: "Global batch (sequences per step) whose product shapes are measured.")
    var batch: Int = 8

    @Option(help: "Layouts whose product shapes are measured (comma-separated, e.g. dp2pp2,tp2).")
    var layouts: String = LayoutName.standard.joined(separator: ",")

    @Option(help: "Transports to measure: zmq, mpi (mpi needs mpirun on PATH, or runs under it).")
    var transports: String = "zmq,mpi"

    @Option(help: "Transport whose figures become the scenario's fabric (the one fleet compare will run): mpi when mpirun is installed, else zmq.")
    var fabric: String = ChildProcess.which("mpirun") != nil ? "mpi" : "zmq"

    @Option(help: "Directory checkpoints would be written to (its write bandwidth is measured).")
    var storageDir: String = "."

    @Option(help: .hidden)
    var measureTransport: String?

    @Option(help: .hidden)
    var resultFile: String?

    @OptionGroup var workers: WorkerOptions

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        _ = try shapes()
        for name in transports.split(separator: ",") where !["zmq", "mpi"].contains(name) {
            throw ValidationError("unknown transport '\(name)' in --transports; choose zmq, mpi")
        }
        guard ["zmq", "mpi"].contains(fabric) else { throw ValidationError("--fabric must be zmq or mpi") }
    }

    func run() throws {
        try Console.reportingErrors {
            if measureTransport != nil { return try transportWorker() }
            if MPITransport.isUnderMPIRun { return try underMPIRun() }
            var result = try measureMachine()
            let loaded = 2 * result.cores
            for name in transports.split(separator: ",").map(String.init) {
                guard let figures = try measureSelfLaunched(name, ranks: 2) else { continue }
                result.transports.append(figures)
                // With more ranks than cores: messages wait for computing ranks to be scheduled.
                if let busy = try measureSelfLaunched(name, ranks: loaded) { result.transports.append(busy) }
            }
            try write(result)
        }
    }

    /// The distinct product shapes of every stage of every layout at this batch.
    func shapes() throws -> [GEMMShape] {
        var found = Set<GEMMShape>()
        for name in layouts.split(separator: ",") {
            let layout = try LayoutName.parse(String(name))
            try layout.validate(model: model, batch: batch)
            for work in KernelWork.stages(model: model, layout: layout, batch: batch, sequence: model.context) {
                found.formUnion(work.forward.gemms.keys)
                found.formUnion(work.backward.gemms.keys)
            }
        }
        return found.sorted()
    }

    /// Kernels, memory and storage, in this process.
    func measureMachine() throws -> CalibrationResult {
        Parallel.threads = 1
        BLAS.setThreads(1)
        var result = CalibrationResult(model: model, batch: batch, sequence: model.context,
                                       cores: ProcessInfo.processInfo.activeProcessorCount, repeats: repeats)
        result.fabricTransport = fabric
        result.storageDirectory = storageDir
        let bench = KernelBenchmark(model: model, sequence: model.context, repeats: repeats)
        let shapes = try shapes()
        Console.out("calibrating \(model.name) on \(result.cores) core(s), \(repeats) repeats each")
        for (i, shape) in shapes.enumerated() {
            result.gemm[shape] = bench.gemm(shape)
            Console.progress("  sgemm \(i + 1)/\(shapes.count) \(shape): \(String(format: "%.2f", result.gemm[shape]!.median / 1e9)) GFLOP/s")
        }
        Console.out("  sgemm: \(shapes.count) shapes, \(String(format: "%.2f–%.2f", (result.gemm.values.map(\.median).min() ?? 0) / 1e9, (result.gemm.values.map(\.median).max() ?? 0) / 1e9)) GFLOP/s")
        for kernel in ElementKernel.allCases {
            result.kernels[kernel] = bench.element(kernel)
            Console.out("  \(kernel.rawValue): \(String(format: "%.3f", result.kernels[kernel]!.median * 1e9)) ns/element (\(result.kernels[kernel]!.spreadText))")
        }
        try measureInStep(&result)
        result.memoryBandwidth = Self.memoryBandwidth(repeats: repeats)
        (result.storageBandwidth, result.storageLatency) = try Self.storage(directory: storageDir, repeats: repeats)
        Console.out(String(format: "  memory: %.2f GB/s; storage: %.3f GB/s, %.0f µs per synced small write", result.memoryBandwidth.median / 1e9,
                           result.storageBandwidth.median / 1e9, result.storageLatency.median * 1e6))
        return result
    }

    /// Real one-process training steps at the calibration batch: how their forward and
    /// backward compare with the sum of their kernels measured alone, and what the rest of a
    /// step (optimizer, loss) costs per parameter.
    func measureInStep(_ result: inout CalibrationResult) throws {
        var configuration = TrainingConfiguration(model: model)
        configuration.batch = batch
        configuration.steps = 4 * repeats + 2
        configuration.threads = 1
        let trainer = try Trainer(configuration: configuration, corpus: Corpus.builtIn())
        var compute: [Double] = [], rest: [Double] = []
        _ = try trainer.distributed.run(everyRank: { m, r in
            guard m.step >= 2 else { return }
            compute.append(r.computeSeconds)
            rest.append(r.seconds - r.computeSeconds)
        })
        let work = KernelWork.stages(model: model, layout: ParallelLayout(), batch: batch, sequence: model.context)[0]
        let alone = result.calibration.seconds(work.forward + work.backward)
        result.inStep = Measurement(compute.map { $0 / alone })
        result.isolatedOptimizer = result.kernels[.optimizer]
        result.kernels[.optimizer] = Measurement(rest.map { $0 / Double(model.parameterCount) })
        Console.out(String(format: "  one-process steps: forward+backward %.2f ms = %.3f × the kernels alone; the rest %.2f ms (%.2f ns per parameter)",
                           StepLogs.median(compute) * 1000, result.inStep.median, StepLogs.median(rest) * 1000, result.kernels[.optimizer]!.median * 1e9))
    }

    /// ZeroMQ: 2 self-launched workers; MPI: mpirun -n 2 (when installed). nil when skipped.
    func measureSelfLaunched(_ name: String, ranks: Int) throws -> TransportFigures? {
        let file = NSTemporaryDirectory() + "fleet-calibrate-\(getpid())-\(name)-\(ranks).json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let arguments = ["calibrate", model.name, "--measure-transport", name, "--result-file", file, "--repeats", "\(repeats)", "--timeout", "\(workers.timeout)"]
        let run: (status: Int32, stdout: String, stderr: String)
        if name == "mpi" {
            guard let mpirun = ChildProcess.mpirun(ranks: ranks, pinned: true, arguments + ["--transport", "mpi"]) else {
                Console.out("  mpi: mpirun is not on PATH, not measured")
                return nil
            }
            run = try ChildProcess.run(mpirun.path, mpirun.arguments, environment: mpirun.environment)
        } else {
            run = try ChildProcess.fleet(arguments + ["--transport", "zmq", "--ranks", "\(ranks)"], environment: ["FLEET_PIN_CORES": "1"])
        }
        guard run.status == 0, let data = FileManager.default.contents(atPath: file) else {
            throw FleetError("measuring \(name) failed (exit \(run.status)): \(run.stderr.suffix(600))")
        }
        let figures = try JSONDecoder().decode(TransportFigures.self, from: data)
        var line = String(format: "  %@, %d ranks: α %.1f µs, β %.3f GB/s", figures.transport, ranks, figures.alpha * 1e6, figures.beta / 1e9)
        if let wait = figures.meetingWait { line += String(format: "; a pair all-reduce between compute waits %.1f µs more", wait * 1e6) }
        Console.out(line)
        return figures
    }

    /// One rank of a transport measurement; rank 0 writes the figures as JSON.
    func transportWorker() throws {
        guard let transport = try workers.workerTransport() else { return }
        defer { transport.shutdown() }
        try Console.reportingErrors(rank: transport.rank) {
            var algorithms: [AllReduceAlgorithm] = [.ring, .halvingDoubling, .tree, .naive]
            if transport is MPITransport { algorithms.append(.native) }
            let figures = try TransportFigures.measure(on: transport, repeats: repeats, algorithms: algorithms)
            if transport.rank == 0, let resultFile {
                try JSONEncoder().encode(figures).write(to: URL(fileURLWithPath: resultFile))
            }
        }
    }

    /// Under mpirun every rank measures MPI across the allocation; rank 0 also measures the
    /// machine and writes the scenario.
    func underMPIRun() throws {
        let transport = try WorldSetup.open(.mpi)
        defer { transport.shutdown() }
        try Console.reportingErrors(rank: transport.rank) {
            var figures = try TransportFigures.measure(on: transport, repeats: repeats, algorithms: [.ring, .halvingDoubling, .tree, .naive, .native])
            guard transport.rank == 0 else { return }
            var result = try measureMachine()
            figures.transport = "mpi"
            result.transports = [figures]
            result.fabricTransport = "mpi"
            try write(result)
        }
    }

    private func write(_ result: CalibrationResult) throws {
        let directory = (out as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try result.yaml().write(toFile: out, atomically: true, encoding: .utf8)
        // What was written must read back as a scenario.
        _ = try ScenarioReader(path: out).read()
        Console.out("wrote \(out) — next: fleet compare \(model.name) --scenario \(out)")
    }

    static func memoryBandwidth(repeats: Int) -> Measurement {
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
    static func storage(directory: String, repeats: Int) throws -> (Measurement, Measurement) {
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
                guard n > 0 else { throw FleetError("writing in \(directory) failed: \(String(cString: strerror(errno)))") }
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
