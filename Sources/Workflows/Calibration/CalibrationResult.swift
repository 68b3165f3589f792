import Parallelism
import Engine
import Foundation
import Tensor
import Workload

/// Everything `fleet calibrate` measured, and the scenario it makes of it: a `local` device
/// (cores, sgemm rates by shape, per-element kernel times), a fabric from one transport's
/// α–β, and a storage entry, each value annotated with how it was measured.
public struct CalibrationResult {
    public var model: ModelSpec
    public var batch: Int
    public var sequence: Int
    public var cores: Int
    public var repeats: Int
    public var gemm: [GEMMShape: Measurement] = [:]
    public var kernels: [ElementKernel: Measurement] = [:]
    public var inStep = Measurement([1])
    public var isolatedOptimizer: Measurement?
    public var memoryBandwidth = Measurement([])
    /// A core's best time with every core computing over its best time alone (`CoreContention.contention`),
    /// with each round's ratio for its spread; each core's speed alone over their mean.
    public var contention: Double?
    public var contentionRounds = Measurement([])
    public var coreSpeeds: [Double] = []
    /// Each core's best training step (forward and backward) alone and with every core busy: the drift probe's reference.
    public var coreSteps: KernelCalibration.CoreSteps?
    public var transports: [TransportFigures] = []
    public var fabricTransport = "zmq"
    /// The hosts `fleet calibrate --hosts` measured between (empty: this machine only).
    public var hosts: [String] = []
    public var storageBandwidth = Measurement([])
    public var storageLatency = Measurement([])
    public var storageDirectory = "."
    /// Which BLAS kernel measured the rates, and who chose it.
    public var blas = BLASKernelReport.current(environment: ProcessInfo.processInfo.environment)

    public init(model: ModelSpec, batch: Int, sequence: Int, cores: Int, repeats: Int) {
        self.model = model
        self.batch = batch
        self.sequence = sequence
        self.cores = cores
        self.repeats = repeats
    }

    /// The measured kernels as the simulator uses them.
    public var calibration: KernelCalibration {
        var c = KernelCalibration(gemm: gemm.mapValues(\.median), perElement: kernels.mapValues(\.median), cores: cores)
        c.inStep = inStep.median
        c.pinned = true
        c.coresSharedByNodes = coresSharedByNodes
        if let contention { c.contention = contention }
        c.coreSpeeds = coreSpeeds
        c.coreSteps = coreSteps
        c.meetingWait = fabric?.meetingWait ?? 0
        c.oversubscribedMeetingWait = loaded?.meetingWait ?? 0
        c.networkMeetingWait = betweenHosts?.meetingWait
        c.handoffWait = loaded?.handoff?.median ?? 0
        c.blasKernel = blas.kernel
        c.transport = fabricTransport
        c.gemmRepeats = gemm.mapValues(\.samples)
        c.perElementRepeats = kernels.mapValues(\.samples)
        c.inStepRepeats = inStep.samples
        c.waitRepeats = waitRepeats
        return c
    }

    /// Every repeat of each measured wait (seconds), for compare's prediction intervals.
    public var waitRepeats: [KernelCalibration.Wait: [Double]] {
        var repeats: [KernelCalibration.Wait: [Double]] = [:]
        repeats[.meeting] = fabric?.meetingWaitRepeats
        repeats[.oversubscribedMeeting] = loaded?.meetingWaitRepeats
        repeats[.networkMeeting] = betweenHosts?.meetingWaitRepeats
        repeats[.handoff] = loaded?.handoff?.samples
        return repeats
    }

    /// The two-rank figures of the fabric's transport on one host, and its figures with more ranks than cores.
    public var fabric: TransportFigures? {
        transports.first { $0.ranks == 2 && $0.hosts == 1 && isFabric($0) } ?? transports.first { $0.hosts == 1 }
    }
    public var loaded: TransportFigures? {
        transports.first { $0.ranks > cores && $0.hosts == 1 && isFabric($0) }
    }
    /// The fabric's transport between two hosts (`fleet calibrate --hosts`): the network between nodes.
    public var betweenHosts: TransportFigures? { transports.first { $0.hosts > 1 && isFabric($0) } }
    /// Whether the hosts are one machine's namespaces (test hosts): their ranks share this machine's cores.
    public var coresSharedByNodes: Bool { betweenHosts.map { $0.machines == 1 } ?? false }

    private func isFabric(_ figures: TransportFigures) -> Bool { figures.transport.lowercased().hasPrefix(fabricTransport) }

    public func yaml() -> String {
        let host = ProcessInfo.processInfo.hostName
        let date = ISO8601DateFormatter().string(from: Date())
        let peak = gemm.values.map(\.median).max() ?? 1e9
        var y = """
        # Written by `fleet calibrate \(model.name)` on \(host) at \(date).
        # Every figure is the median of \(repeats) repeats; "spread" is (max − min) / median. The kernels'
        # and waits' repeats are kept (repeats_gflops, kernel_repeats_ns, in_step_repeats, wait_repeats_us):
        # fleet compare draws from them.
        # `fleet compare` sets the layout and ranks per run; the rest describes this machine.
        name: \(model.name) on \(host) (calibrated)
        cluster:
          device:
            name: local
            cores: \(cores)   # cores the ranks share (this process's affinity); busier ranks share them
            in_step: \(String(format: "%.4f", inStep.median))   # one-process steps at batch \(batch): forward+backward time / the sum of its kernels measured alone in the round just before it (4 steps a round); \(inStep.spreadText) steps
            in_step_repeats: [\(inStep.samples.map { String(format: "%.4f", $0) }.joined(separator: ", "))]
        \(contentionLine)\(coresSharedByNodes ? "    cores_shared_by_nodes: true   # the hosts are network namespaces of this one machine (test hosts): every node's ranks share these cores\n" : "")    pinned: true   # fleet compare pins rank r to core r mod \(cores) (mpirun --bind-to core --map-by core; FLEET_PIN_CORES for its own workers): only ranks on one core share it
            transport: \(fabricTransport)   # the links and waits below are \(fabricTransport == "mpi" ? "MPI's" : "ZeroMQ's") (--fabric): fleet compare warns when it runs the other
            waiting: sleep   # a waiting rank leaves its core to the rank it shares it with (ZeroMQ sleeps in zmq_poll; MPI yields while oversubscribed)
            blas_kernel: \(blas.kernel)   # \(blas.headerLine.replacingOccurrences(of: "blas: ", with: "")); fleet compare warns when it runs another
            peak_fp32: \(String(format: "%.2f", peak / 1e9)) GFLOP/s   # best one-thread sgemm below
            memory_bandwidth: \(String(format: "%.2f", memoryBandwidth.median / 1e9)) GB/s   # one-thread memcpy of 64 MiB, read + write; \(memoryBandwidth.spreadText)
        \(meetingLines)    gemm:   # one-thread OpenBLAS sgemm of each product shape \(model.name) issues at batch \(batch) (C[m,n] = op(A)[m,k]·op(B)[k,n])

        """
        for (shape, m) in gemm.sorted(by: { $0.key < $1.key }) {
            let trans = shape.transA ? "A" : shape.transB ? "B" : "none"
            let repeats = m.samples.map { String(format: "%.3f", $0 / 1e9) }.joined(separator: ", ")
            y += "      - {m: \(shape.m), n: \(shape.n), k: \(shape.k), trans: \(trans), rate: \(String(format: "%.3f", m.median / 1e9)) GFLOP/s, repeats_gflops: [\(repeats)]}   # \(m.spreadText)\n"
        }
        y += "    kernels:   # one-thread time per element at 4 × \(sequence) tokens (attention: per score element)\n"
        if let isolated = isolatedOptimizer {
            y += "      # optimizer: per parameter, the rest of a one-process step (AdamW, clipping, loss, data); AdamW alone: \(String(format: "%.3f", isolated.median * 1e9)) ns\n"
        }
        for kernel in ElementKernel.allCases {
            guard let m = kernels[kernel] else { continue }
            y += "      \(kernel.rawValue): \(String(format: "%.4f", m.median * 1e9)) ns   # \(m.spreadText)\n"
        }
        y += "    kernel_repeats_ns:   # every repeat of each kernel above, ns per element\n"
        for kernel in ElementKernel.allCases {
            guard let m = kernels[kernel] else { continue }
            y += "      \(kernel.rawValue): [\(m.samples.map { String(format: "%.4f", $0 * 1e9) }.joined(separator: ", "))]\n"
        }
        let waits = waitRepeats.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }
        if !waits.isEmpty {
            y += "    wait_repeats_us:   # every repeat of each wait above, µs\n"
            for (wait, samples) in waits {
                y += "      \(wait.rawValue): [\(samples.map { String(format: "%.1f", $0 * 1e6) }.joined(separator: ", "))]\n"
            }
        }
        func link(_ f: TransportFigures?) -> String {
            f.map { "{bandwidth: \(String(format: "%.3f", $0.beta / 1e9)) GB/s, latency: \(String(format: "%.2f", $0.alpha * 1e6)) us}" }
                ?? "{bandwidth: 2 GB/s, latency: 20 us}"
        }
        let f = fabric
        let how = f.map { "\($0.transport) ping-pong between 2 ranks on one host (\($0.path)): α = one-way time of 8 B, β = least-squares fit from 64 KiB to 16 MiB" }
            ?? "not measured (no transport calibrated): a placeholder"
        if let between = betweenHosts {
            y += """
              nodes: \(hosts.count)   # the hosts of fleet calibrate --hosts: \(hosts.joined(separator: ", ")); fleet compare spreads each layout's ranks evenly over them
              gpus_per_node: 2
              scale_up: \(link(f))   # \(how)
            fabric:
              topology: single-switch
              link: \(link(between))   # \(between.transport) ping-pong between 2 ranks on 2 hosts (\(between.path)): the network between nodes

            """
        } else {
            y += """
              nodes: 1
              gpus_per_node: 4
              scale_up: \(link(f))   # \(how)
            fabric:
              topology: single-switch
              link: \(link(f))   # the same: every rank is on this machine

            """
        }
        for t in transports {
            y += "# \(t.transport), \(t.ranks) ranks\(t.hosts > 1 ? " on \(t.hosts) hosts" : "") — one-way point-to-point time (median, spread) and the α–β fit:\n"
            for (bytes, m) in t.pingPong.sorted(by: { $0.key < $1.key }) {
                let model = t.alpha + Double(bytes) / max(t.beta, 1)
                y += "#   \(ByteSize(bytes: bytes).description.padding(toLength: 8, withPad: " ", startingAt: 0)) \(format(m.median)) (\(String(format: "%.1f%%", m.spread * 100)))  α–β: \(format(model))\n"
            }
            y += "#   α = \(format(t.alpha)), β = \(String(format: "%.3f", t.beta / 1e9)) GB/s\n"
            for (algorithm, sizes) in t.allReduce.sorted(by: { $0.key < $1.key }) {
                y += "# \(t.transport) all-reduce (\(algorithm), \(t.ranks) ranks\(t.ranks > cores ? " on \(cores) cores" : "")):"
                for (bytes, m) in sizes.sorted(by: { $0.key < $1.key }) {
                    y += " \(ByteSize(bytes: bytes)) \(format(m.median)) (\(String(format: "%.0f%%", m.spread * 100)));"
                }
                y += "\n"
            }
        }
        y += """
        storage:   # 64 MiB written and fsynced in \(storageDirectory), \(storageBandwidth.spreadText); latency: 4 KiB write + fsync + rename
          aggregate: \(String(format: "%.3f", storageBandwidth.median / 1e9)) GB/s
          per_client: \(String(format: "%.3f", storageBandwidth.median / 1e9)) GB/s
          latency: \(String(format: "%.1f", storageLatency.median * 1e6)) us
        workload:
          model: \(model.name)
          batch: \(batch)
          sequence: \(sequence)
          precision: fp32
        layout: {dp: 2, pp: 2, microbatches: 4, schedule: 1f1b}
        collectives: {bucket: 1 MiB}   # fleet train's default --bucket

        """
        return y
    }

    /// `contention:` when measured (more than one core), and each core's speed alone (`core_speeds:`).
    private var contentionLine: String {
        guard let contention else { return "" }
        var line = String(format: "    contention: %.4f   # a training step's forward and backward on all %d cores at once: each core's best time over its best time alone, %d rounds (each round's own ratio: median %.3f, %@)\n",
                          contention, cores, contentionRounds.repeats, contentionRounds.median, contentionRounds.spreadText)
        if !coreSpeeds.isEmpty {
            line += "    core_speeds: [\(coreSpeeds.map { String(format: "%.4f", $0) }.joined(separator: ", "))]   # each core's best step alone over the cores' mean: fleet compare prices a rank pinned to core c at core_speeds[c] × the kernels below\n"
        }
        if let steps = coreSteps {
            func ms(_ values: [Double]) -> String { values.map { String(format: "%.3f", $0 * 1000) }.joined(separator: ", ") }
            line += "    core_step_ms: {alone: [\(ms(steps.alone))], together: [\(ms(steps.together))]}   # each core's best forward+backward of a one-process step at batch \(batch), alone and with every core computing one: fleet compare times them again before each run (its drift probe)\n"
        }
        return line
    }

    /// The waits of meetings under load (see `TransportFigures.loadedMeeting`).
    private var meetingLines: String {
        var lines = ""
        for (key, figures) in [("meeting_wait", fabric), ("oversubscribed_meeting_wait", loaded), ("network_meeting_wait", betweenHosts)] {
            guard let f = figures, let wait = f.meetingWait, let m = f.loadedMeeting else { continue }
            lines += "    \(key): \(String(format: "%.1f", wait * 1e6)) us   # \(f.transport), \(f.ranks) ranks\(f.hosts > 1 ? " on \(f.hosts) hosts" : "") on \(cores) cores: a \(ByteSize(bytes: TransportFigures.meetingBytes)) all-reduce within pairs between ~2 ms of compute took \(format(m.median)) (\(m.spreadText)), less its α–β time\n"
        }
        if let l = loaded, let h = l.handoff {
            lines += "    handoff_wait: \(String(format: "%.1f", h.median * 1e6)) us   # \(l.transport), two ranks pinned to one core passing the turn (~2 ms of compute each, then 8 B): the time per message beyond the compute; \(h.spreadText)\n"
        }
        return lines
    }

    private func format(_ seconds: Double) -> String {
        seconds >= 1e-3 ? String(format: "%.3f ms", seconds * 1e3) : String(format: "%.1f µs", seconds * 1e6)
    }
}
