import Foundation
import Parallelism
import Workload
import Yams

extension ScenarioReader {
    /// A catalog name, or a measured device (`fleet calibrate` writes one): a mapping with a
    /// name, cores, peak and memory figures, sgemm rates by shape and per-element kernel times.
    func device(_ node: Node) throws -> Device {
        let known = DeviceCatalog.all.map(\.name).joined(separator: ", ")
        if let name = node.string {
            guard let device = DeviceCatalog.named(name) else { throw fail(node, "unknown device '\(name)'; expected one of \(known)") }
            return device
        }
        let map = try mapping(node, "cluster.device", allowed: ["name", "cores", "pinned", "in_step", "waiting", "cores_shared_by_nodes", "contention", "meeting_wait", "network_meeting_wait", "oversubscribed_meeting_wait", "handoff_wait", "peak_fp32", "memory_bandwidth", "memory", "watts", "gemm", "kernels", "blas_kernel", "transport", "kernel_repeats_ns", "in_step_repeats", "wait_repeats_us", "core_speeds", "core_step_ms"])
        let nameNode = try required(map, "name", "cluster.device")
        guard var device = nameNode.string.flatMap(DeviceCatalog.named) else {
            throw fail(nameNode, "cluster.device.name must name the device the measurements refine; expected one of \(known)")
        }
        if let n = map["peak_fp32"] { device.peakFLOPs = [.fp32: try quantity(n, "cluster.device.peak_fp32", Units.flops, positive: true)] }
        if let n = map["memory_bandwidth"] { device.memoryBandwidth = Bandwidth(bytesPerSecond: try quantity(n, "cluster.device.memory_bandwidth", Units.bandwidth, positive: true)) }
        if let n = map["memory"] { device.memoryBytes = try quantity(n, "cluster.device.memory", Units.bytes, positive: true) }
        if let n = map["watts"] { device.watts = try number(n, "cluster.device.watts") }
        guard map["gemm"] != nil || map["kernels"] != nil || map["cores"] != nil else { return device }
        let cores = try int(required(map, "cores", "cluster.device"), "cluster.device.cores", minimum: 1)
        var gemm: [GEMMShape: Double] = [:], gemmRepeats: [GEMMShape: [Double]] = [:]
        // Repeats calibrate kept (compare's prediction intervals draw from them): positive numbers.
        // A wait's repeats may be zero (a meeting that cost no more than its α–β time).
        func repeats(_ node: Node, _ name: String, zero: Bool = false) throws -> [Double] {
            guard let items = node.sequence else { throw fail(node, "\(name) must be a list of numbers") }
            return try items.map { item in
                guard let value = item.float, value.isFinite, value > 0 || (zero && value == 0) else {
                    throw fail(item, "\(name) must be \(zero ? "non-negative" : "positive") numbers (got '\(item.string ?? "?")')")
                }
                return value
            }
        }
        if let list = map["gemm"] {
            guard let items = list.sequence else { throw fail(list, "cluster.device.gemm must be a list of {m, n, k, trans, rate}") }
            for item in items {
                let entry = try mapping(item, "a gemm entry", allowed: ["m", "n", "k", "trans", "rate", "repeats_gflops"])
                var shape = GEMMShape(m: try int(required(entry, "m", "gemm"), "gemm.m", minimum: 1),
                                      n: try int(required(entry, "n", "gemm"), "gemm.n", minimum: 1),
                                      k: try int(required(entry, "k", "gemm"), "gemm.k", minimum: 1))
                if let t = entry["trans"] {
                    guard let value = t.string, ["A", "B", "none"].contains(value) else { throw fail(t, "gemm.trans must be A, B or none") }
                    shape.transA = value == "A"
                    shape.transB = value == "B"
                }
                gemm[shape] = try quantity(required(entry, "rate", "gemm"), "gemm.rate", Units.flops)
                if let node = entry["repeats_gflops"] { gemmRepeats[shape] = try repeats(node, "gemm.repeats_gflops").map { $0 * 1e9 } }
            }
        }
        var perElement: [ElementKernel: Double] = [:]
        if let node = map["kernels"] {
            let kernels = try mapping(node, "cluster.device.kernels", allowed: ElementKernel.allCases.map(\.rawValue))
            for (key, value) in kernels.pairs { perElement[ElementKernel(rawValue: key)!] = try quantity(value, "kernels.\(key)", Units.time) }
        }
        var calibration = KernelCalibration(gemm: gemm, perElement: perElement, cores: cores)
        calibration.gemmRepeats = gemmRepeats
        if let node = map["kernel_repeats_ns"] {
            let kernels = try mapping(node, "cluster.device.kernel_repeats_ns", allowed: ElementKernel.allCases.map(\.rawValue))
            for (key, value) in kernels.pairs {
                calibration.perElementRepeats[ElementKernel(rawValue: key)!] = try repeats(value, "kernel_repeats_ns.\(key)").map { $0 * 1e-9 }
            }
        }
        if let node = map["in_step_repeats"] { calibration.inStepRepeats = try repeats(node, "cluster.device.in_step_repeats") }
        if let node = map["wait_repeats_us"] {
            let waits = try mapping(node, "cluster.device.wait_repeats_us", allowed: KernelCalibration.Wait.allCases.map(\.rawValue))
            for (key, value) in waits.pairs {
                calibration.waitRepeats[KernelCalibration.Wait(rawValue: key)!] = try repeats(value, "wait_repeats_us.\(key)", zero: true).map { $0 * 1e-6 }
            }
        }
        if let n = map["in_step"] {
            calibration.inStep = try number(n, "cluster.device.in_step")
            guard calibration.inStep > 0 else { throw fail(n, "cluster.device.in_step must be positive") }
        }
        if let n = map["pinned"] { calibration.pinned = try flag(n, "cluster.device.pinned") }
        if let n = map["contention"] { calibration.contention = try number(n, "cluster.device.contention") }
        if let n = map["core_speeds"] {
            calibration.coreSpeeds = try repeats(n, "cluster.device.core_speeds")
            guard calibration.coreSpeeds.count == cores else {
                throw fail(n, "cluster.device.core_speeds has \(calibration.coreSpeeds.count) speed(s) for \(cores) core(s): one per core, as fleet calibrate writes them (or remove the line)")
            }
        }
        if let n = map["core_step_ms"] {
            let steps = try mapping(n, "cluster.device.core_step_ms", allowed: ["alone", "together"])
            func list(_ key: String) throws -> [Double] {
                let node = try required(steps, key, "cluster.device.core_step_ms")
                let values = try repeats(node, "cluster.device.core_step_ms.\(key)").map { $0 / 1000 }
                guard values.count == cores else { throw fail(node, "cluster.device.core_step_ms.\(key) has \(values.count) time(s) for \(cores) core(s): one per core") }
                return values
            }
            calibration.coreSteps = KernelCalibration.CoreSteps(alone: try list("alone"), together: try list("together"))
        }
        if let n = map["cores_shared_by_nodes"] {
            calibration.coresSharedByNodes = try flag(n, "cluster.device.cores_shared_by_nodes", meaning: "true (the nodes are one machine's test hosts) or false")
        }
        if let n = map["meeting_wait"] { calibration.meetingWait = try quantity(n, "cluster.device.meeting_wait", Units.time) }
        if let n = map["network_meeting_wait"] { calibration.networkMeetingWait = try quantity(n, "cluster.device.network_meeting_wait", Units.time) }
        if let n = map["handoff_wait"] { calibration.handoffWait = try quantity(n, "cluster.device.handoff_wait", Units.time) }
        if let n = map["oversubscribed_meeting_wait"] {
            calibration.oversubscribedMeetingWait = try quantity(n, "cluster.device.oversubscribed_meeting_wait", Units.time)
        }
        if let n = map["waiting"] {
            guard let value = n.string, ["spin", "sleep"].contains(value) else { throw fail(n, "cluster.device.waiting must be spin (MPI polls) or sleep (ZeroMQ blocks)") }
            calibration.waitingSpins = value == "spin"
        }
        if let n = map["blas_kernel"] {
            guard let value = n.string, !value.isEmpty else { throw fail(n, "cluster.device.blas_kernel must be a kernel name such as Haswell") }
            calibration.blasKernel = value
        }
        if let n = map["transport"] {
            guard let value = n.string, ["mpi", "zmq"].contains(value) else { throw fail(n, "cluster.device.transport must be mpi or zmq (the transport calibrate measured)") }
            calibration.transport = value
        }
        device.calibration = calibration
        return device
    }
}
