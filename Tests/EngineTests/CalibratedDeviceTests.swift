import XCTest
import Engine
import Parallelism
import Workload

/// A measured CPU device: the simulator's figures equal their closed forms built from the
/// measured rates, α and β, and processor sharing stretches compute by ranks / cores.
final class CalibratedDeviceTests: XCTestCase {
    let rate = 50e9, nsPerElement = 0.5e-9, inStep = 1.1, alpha = 20e-6, beta = 2e9
    let model = ModelCatalog.gptTiny

    func scenario(_ layout: ParallelLayout, cores: Int, spins: Bool = false, pinned: Bool = false, batch: Int = 8,
                  waits: (full: Double, over: Double) = (0, 0)) -> Scenario {
        var device = DeviceCatalog.local
        var calibration = KernelCalibration(gemm: [GEMMShape(m: 64, n: 64, k: 64): rate],
                                            perElement: Dictionary(uniqueKeysWithValues: ElementKernel.allCases.map { ($0, nsPerElement) }),
                                            cores: cores)
        calibration.inStep = inStep
        calibration.waitingSpins = spins
        calibration.pinned = pinned
        calibration.meetingWait = waits.full
        calibration.oversubscribedMeetingWait = waits.over
        device.calibration = calibration
        let link = Link(bandwidth: Bandwidth(bytesPerSecond: beta), latency: SimTime(seconds: alpha))
        var s = Scenario(name: "calibrated", device: device, nodes: 1, gpusPerNode: layout.worldSize, topology: .singleSwitch,
                         scaleUp: link, scaleOut: link, model: model, batch: batch, sequence: 128, layout: layout)
        s.precision = .fp32
        s.bucketBytes = 1_048_576
        return s
    }

    /// Forward + backward of the whole model on one rank, counted by hand (not from the plan):
    /// the layers' matrix FLOPs three times the forward's (the head replicated over tp), and per block the
    /// norms, attention scores, GELU, residuals (and, split, the bias adds after the g
    /// operator) and bias gradients; the embedding, final norm and loss once.
    func compute(sequences: Int, tp: Int) -> Double {
        let t = 128, r = Double(sequences * t), c = Double(model.dModel), h = Double(model.mlpHidden) / Double(tp)
        let v = Double(model.vocabulary), scores = Double(sequences * model.heads / tp * t * t), T = Double(tp)
        // Attention's own small products are priced per score element, not at the gemm rate.
        let linear = model.layerForwardFLOPsPerToken(sequence: t) - 4 * Double(t) * c
        let flops = 3 * r * (Double(model.layers) * linear / T + model.headForwardFLOPsPerToken)
        let forward = 2 * r * c + scores + r * h + 2 * r * c + (tp > 1 ? 2 * r * c : 0)
        let backward = 2 * r * c + scores + r * h + r * (3 * c / T + c + h + c)
        let elements = Double(model.layers) * (forward + backward) + 2 * r * c + 2 * r * c + r * v
        return inStep * (flops / rate + elements * nsPerElement)
    }

    /// Parameters one rank updates, counted by hand: per block the split matrices and column
    /// biases over tp, the row-parallel biases and four LayerNorm vectors whole; the embeddings
    /// and the final LayerNorm whole.
    func updated(tp: Int) -> Double {
        let c = model.dModel, h = model.mlpHidden
        let split = 3 * c * c + 3 * c + c * c + h * c + h + c * h, whole = c + c + 4 * c
        let perLayer = Double(split) / Double(tp) + Double(whole)
        return Double(model.layers) * perLayer + Double(model.vocabulary * c + model.context * c + 2 * c)
    }

    func optimizer(tp: Int) -> Double { updated(tp: tp) * nsPerElement }

    func testOneRankIsItsKernelsPlusTheOptimizer() {
        let report = StepSimulator(scenario: scenario(ParallelLayout(), cores: 2)).run()
        XCTAssertEqual(report.stepTime.seconds, compute(sequences: 8, tp: 1) + optimizer(tp: 1), accuracy: 1e-8)
        // One rank updates every parameter.
        XCTAssertEqual(updated(tp: 1), Double(model.parameterCount))
        XCTAssertEqual(ShardPlan(model: model, layout: ParallelLayout()).heldElements(stage: 0), model.parameterCount)
        XCTAssertEqual(Double(ShardPlan(model: model, layout: ParallelLayout(tp: 2)).heldElements(stage: 0)), updated(tp: 2))
    }

    func testTensorParallelAddsItsRingAllReducesAtAlphaBeta() {
        let report = StepSimulator(scenario: scenario(ParallelLayout(tp: 2), cores: 2)).run()
        let bytes = 8.0 * 128 * Double(model.dModel) * 4
        let ring = 2 * (alpha + bytes / 2 / beta)
        let allReduces = 4.0 * Double(model.layers)
        XCTAssertEqual(report.breakdown.tensorParallel.seconds, allReduces * ring, accuracy: 1e-7)
        XCTAssertEqual(report.stepTime.seconds, compute(sequences: 8, tp: 2) + allReduces * ring + optimizer(tp: 2), accuracy: 1e-7)
    }

    func testMoreRanksThanCoresShareThem() {
        let layout = ParallelLayout(dp: 4)
        let own = StepSimulator(scenario: scenario(layout, cores: 4)).run().breakdown
        let shared = StepSimulator(scenario: scenario(layout, cores: 2)).run().breakdown
        XCTAssertEqual(own.compute.seconds, compute(sequences: 2, tp: 1), accuracy: 1e-8)
        XCTAssertEqual(shared.compute.seconds / own.compute.seconds, 2, accuracy: 1e-6)
        XCTAssertEqual(shared.optimizer.seconds / own.optimizer.seconds, 2, accuracy: 1e-6)
    }

    func testPipelineStagesShareCoresOnlyWhileBothCompute() {
        // pp2 on one core: sleeping waiters leave the core to the other stage, so the step lies
        // between one stage's work and both stages' work, and spinning waiters make it longer.
        let layout = ParallelLayout(pp: 2, microbatches: 4)
        let alone = StepSimulator(scenario: scenario(layout, cores: 2)).run().stepTime.seconds
        let sleeping = StepSimulator(scenario: scenario(layout, cores: 1)).run().stepTime.seconds
        let spinning = StepSimulator(scenario: scenario(layout, cores: 1, spins: true)).run().stepTime.seconds
        XCTAssertGreaterThan(sleeping, alone * 1.3)
        XCTAssertLessThanOrEqual(sleeping, compute(sequences: 8, tp: 1) + optimizer(tp: 1) + 0.01)
        XCTAssertGreaterThan(spinning, sleeping)
    }

    func testPinnedRanksShareOnlyTheirOwnCore() {
        // dp2·pp2 pinned to 2 cores: core 0 runs pipeline dp0 (ranks 0 and 2), core 1 pipeline
        // dp1, so each pipeline computes like pp2 alone on one core; unpinned, the four ranks
        // share both cores as one pool.
        let pinned = StepSimulator(scenario: scenario(ParallelLayout(dp: 2, pp: 2, microbatches: 4), cores: 2, pinned: true)).run()
        let oneCore = StepSimulator(scenario: scenario(ParallelLayout(pp: 2, microbatches: 4), cores: 1, batch: 4)).run()
        XCTAssertEqual(pinned.breakdown.compute, oneCore.breakdown.compute)
        // dp4 pinned: two ranks per core, all computing at once: the same as the shared pool.
        let dp4 = ParallelLayout(dp: 4)
        XCTAssertEqual(StepSimulator(scenario: scenario(dp4, cores: 2, pinned: true)).run().breakdown.compute.seconds,
                       StepSimulator(scenario: scenario(dp4, cores: 2)).run().breakdown.compute.seconds, accuracy: 1e-8)
    }

    func testTestHostsShareTheMachinesCores() {
        // dp4 over two nodes of two ranks, 2 cores each: on two machines every rank has a core
        // of its own (dp4 computes like dp2 on two cores); as two test hosts of one 2-core
        // machine the four ranks share its two cores (like dp4 on one node), pinned by global rank.
        let dp4 = ParallelLayout(dp: 4)
        var twoMachines = scenario(dp4, cores: 2, pinned: true)
        twoMachines.nodes = 2
        twoMachines.gpusPerNode = 2
        var testHosts = twoMachines
        testHosts.device.calibration?.coresSharedByNodes = true
        let alone = StepSimulator(scenario: scenario(ParallelLayout(dp: 2), cores: 2, pinned: true, batch: 8)).run().breakdown.compute.seconds
        let shared = StepSimulator(scenario: scenario(dp4, cores: 2, pinned: true)).run().breakdown.compute.seconds
        XCTAssertEqual(StepSimulator(scenario: twoMachines).run().breakdown.compute.seconds, alone / 2, accuracy: 1e-8)
        XCTAssertEqual(StepSimulator(scenario: testHosts).run().breakdown.compute.seconds, shared, accuracy: 1e-8)
        XCTAssertEqual(shared, alone, accuracy: 1e-8, "four ranks on two cores take as long as two ranks of twice the batch")
        // The reader takes the key and names a bad value.
        let yaml = "cluster:\n  device: {name: local, cores: 2, cores_shared_by_nodes: true, gemm: [{m: 64, n: 64, k: 64, rate: 50 GFLOP/s}]}\n  nodes: 2\n  gpus_per_node: 2\n  scale_up: {bandwidth: 10 GB/s, latency: 1 us}\n"
            + "fabric: {topology: single-switch, link: {bandwidth: 1 GB/s, latency: 40 us}}\nworkload: {model: gpt-tiny, batch: 8}\nlayout: {dp: 4}\n"
        XCTAssertEqual(try ScenarioReader(path: "t.yaml", text: yaml).read().base.device.calibration?.coresSharedByNodes, true)
        XCTAssertThrowsError(try ScenarioReader(path: "t.yaml", text: yaml.replacingOccurrences(of: "cores_shared_by_nodes: true", with: "cores_shared_by_nodes: 3"))
                                .read()) { error in
            XCTAssertTrue("\(error)".contains("cores_shared_by_nodes must be true"), "\(error)")
        }
    }

    func testBusyCoresSlowEachOtherAsMeasured() throws {
        var c = KernelCalibration(gemm: [:], perElement: [:], cores: 4)
        c.inStep = 1.1
        c.inStepRepeats = [1.0, 1.1, 1.2]
        XCTAssertEqual(c.underLoad(ranks: 4), c, "no contention measured: unchanged")
        c.contention = 1.3
        XCTAssertEqual(c.underLoad(ranks: 1).inStep, 1.1, accuracy: 1e-12, "one core busy: as alone")
        XCTAssertEqual(c.underLoad(ranks: 4).inStep, 1.1 * 1.3, accuracy: 1e-12, "every core busy: the measured factor")
        XCTAssertEqual(c.underLoad(ranks: 8).inStep, 1.1 * 1.3, accuracy: 1e-12, "no more than every core")
        XCTAssertEqual(c.underLoad(ranks: 2).inStep, 1.1 * (1 + 0.3 / 3), accuracy: 1e-12, "linear in between")
        for (value, expected) in zip(c.underLoad(ranks: 4).inStepRepeats, [1.3, 1.43, 1.56]) { XCTAssertEqual(value, expected, accuracy: 1e-9) }
        // dp2 on two pinned cores computes 1.25 × slower with contention 1.25; dp1 alone does not.
        func step(_ layout: ParallelLayout, contention: Double) -> StepReport {
            var s = scenario(layout, cores: 2, pinned: true)
            s.device.calibration!.contention = contention
            return StepSimulator(scenario: s).run()
        }
        XCTAssertEqual(step(ParallelLayout(dp: 2), contention: 1.25).breakdown.compute.seconds,
                       1.25 * step(ParallelLayout(dp: 2), contention: 1).breakdown.compute.seconds, accuracy: 1e-9)
        XCTAssertEqual(step(ParallelLayout(), contention: 1.25).stepTime, step(ParallelLayout(), contention: 1).stepTime)
        // The reader takes the measured factor and names a bad one.
        let yaml = "cluster:\n  device: {name: local, cores: 2, contention: 1.2, gemm: [{m: 64, n: 64, k: 64, rate: 50 GFLOP/s}]}\n  nodes: 1\n  gpus_per_node: 2\n"
            + "  scale_up: {bandwidth: 10 GB/s, latency: 1 us}\nfabric: {topology: single-switch, link: {bandwidth: 1 GB/s, latency: 40 us}}\n"
            + "workload: {model: gpt-tiny, batch: 8}\nlayout: {dp: 2}\n"
        XCTAssertEqual(try XCTUnwrap(ScenarioReader(path: "c.yaml", text: yaml).read().base.device.calibration?.contention), 1.2, accuracy: 1e-12)
        XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: yaml.replacingOccurrences(of: "contention: 1.2", with: "contention: -1")).read()) { error in
            XCTAssertTrue("\(error)".contains("contention must be a positive number"), "\(error)")
        }
    }

    func testMeetingsAcrossNodesWaitAsMeasuredBetweenThem() {
        let full = 0.3e-3, network = 0.8e-3
        var c = KernelCalibration(gemm: [:], perElement: [:], cores: 2)
        c.meetingWait = full
        XCTAssertEqual(c.meetingWait(busy: 2, cores: 2, acrossNodes: true), full, "no figure between nodes: as inside one")
        c.networkMeetingWait = network
        XCTAssertEqual(c.meetingWait(busy: 2, cores: 2, acrossNodes: true), network)
        XCTAssertEqual(c.meetingWait(busy: 1, cores: 2, acrossNodes: true), 0, "a core to spare: no wait")
        // tp2 with one rank on each of two test hosts (one 2-core machine): each of the 4 · layers
        // all-reduces waits the wait between nodes; on one node the figure between nodes changes nothing.
        func tp2(nodes: Int, between: Double?) -> StepReport {
            var s = scenario(ParallelLayout(tp: 2), cores: 2, pinned: true, waits: (full, 0))
            s.device.calibration!.networkMeetingWait = between
            s.device.calibration!.coresSharedByNodes = true
            (s.nodes, s.gpusPerNode) = (nodes, 2 / nodes)
            return StepSimulator(scenario: s).run()
        }
        XCTAssertEqual(tp2(nodes: 2, between: network).stepTime.seconds - tp2(nodes: 2, between: nil).stepTime.seconds,
                       4 * Double(model.layers) * (network - full), accuracy: 1e-8)
        XCTAssertEqual(tp2(nodes: 1, between: network).stepTime, tp2(nodes: 1, between: nil).stepTime)
        // A data-parallel bucket's group across nodes meets at the wait between them.
        var dp = scenario(ParallelLayout(dp: 2), cores: 2, pinned: true, waits: (full, 0))
        dp.device.calibration!.networkMeetingWait = network
        XCTAssertEqual(StepSimulator(scenario: dp).bucketSynchronization(group: 2, acrossNodes: true).seconds, network, accuracy: 1e-12)
        XCTAssertEqual(StepSimulator(scenario: dp).bucketSynchronization(group: 2).seconds, full, accuracy: 1e-12)
    }

    /// Ring attention on a calibrated CPU: the cores that compute move the K/V blocks, so the
    /// ring's α–β time is not hidden behind the attention, and each of its 3 · layers passes and
    /// reduce-scatters a step meets the group like a tensor-parallel all-reduce.
    func testRingAttentionOnACPUIsNotHiddenAndMeetsItsGroup() {
        let wait = 0.4e-3
        func cp2(waits: Double) -> StepReport {
            StepSimulator(scenario: scenario(ParallelLayout(dp: 2, cp: 2), cores: 2, pinned: true, waits: (waits, 0))).run()
        }
        let plain = cp2(waits: 0), waiting = cp2(waits: wait)
        // Per layer: the block (8 sequences × 64 positions × 2c floats) gathered forward and again backward, both blocks reduce-scattered.
        let block = 8.0 * 64 * 2 * Double(model.dModel) * 4
        let gather = alpha + block / beta, scatter = alpha + block / beta
        XCTAssertEqual(plain.breakdown.contextParallel.seconds, Double(model.layers) * (2 * gather + scatter), accuracy: 1e-3 * plain.breakdown.contextParallel.seconds)
        XCTAssertEqual(waiting.breakdown.contextParallel.seconds - plain.breakdown.contextParallel.seconds, 3 * Double(model.layers) * wait, accuracy: 1e-8)
        XCTAssertEqual(waiting.breakdown.tensorParallel, plain.breakdown.tensorParallel, "no tensor-parallel group")
        // One rank on each of two test hosts: the ring's group spans them (its tensor-parallel
        // group of one does not), so each of its meetings waits as measured between nodes.
        func acrossHosts(between: Double?) -> StepReport {
            var s = scenario(ParallelLayout(dp: 2, cp: 2), cores: 2, pinned: true, waits: (wait, 0))
            s.device.calibration!.networkMeetingWait = between
            s.device.calibration!.coresSharedByNodes = true
            (s.nodes, s.gpusPerNode) = (2, 1)
            return StepSimulator(scenario: s).run()
        }
        let network = 1.5e-3
        XCTAssertEqual(acrossHosts(between: network).breakdown.contextParallel.seconds - acrossHosts(between: nil).breakdown.contextParallel.seconds,
                       3 * Double(model.layers) * (network - wait), accuracy: 1e-8)
    }

    func testPipelineMessagesBetweenRanksOnOneCorePayTheHandOff() {
        let layout = ParallelLayout(dp: 2, pp: 2, microbatches: 4), handoff = 1e-3
        var paying = scenario(layout, cores: 2, pinned: true)
        paying.device.calibration!.handoffWait = handoff
        let base = StepSimulator(scenario: scenario(layout, cores: 2, pinned: true)).run().stepTime.seconds
        let paid = StepSimulator(scenario: paying).run().stepTime.seconds
        XCTAssertGreaterThanOrEqual(paid, base + handoff - 1e-9, "at least one message is on the critical path")
        XCTAssertLessThanOrEqual(paid, base + 8 * handoff + 1e-9, "at most all 8 messages of the pipeline")
        // Not pinned: nobody knows which ranks share a core, so no hand-off is charged.
        var loose = scenario(layout, cores: 2)
        loose.device.calibration!.handoffWait = handoff
        XCTAssertEqual(StepSimulator(scenario: loose).run().stepTime, StepSimulator(scenario: scenario(layout, cores: 2)).run().stepTime)
    }

    func testMeetingsWaitOnlyWhenEveryCoreIsBusy() {
        let full = 0.3e-3, over = 2e-3
        var c = KernelCalibration(gemm: [:], perElement: [:], cores: 2)
        (c.meetingWait, c.oversubscribedMeetingWait) = (full, over)
        XCTAssertEqual(c.meetingWait(busy: 1, cores: 2), 0, "a core to spare: no wait")
        XCTAssertEqual(c.meetingWait(busy: 2, cores: 2), full)
        XCTAssertEqual(c.meetingWait(busy: 4, cores: 2), max(full, 0.5 * over / 2))
        XCTAssertEqual(c.meetingWait(busy: 8, cores: 2), 0.75 * over / 2)

        // tp2 on its own two cores: every one of the 4 · layers all-reduces per step waits the full-load wait.
        let waited = StepSimulator(scenario: scenario(ParallelLayout(tp: 2), cores: 2, waits: (full, over))).run()
        let free = StepSimulator(scenario: scenario(ParallelLayout(tp: 2), cores: 2)).run()
        XCTAssertEqual(waited.stepTime.seconds - free.stepTime.seconds, 4 * Double(model.layers) * full, accuracy: 1e-8)
        // pp2 on four cores: never fully busy, so messages never wait.
        let roomy = StepSimulator(scenario: scenario(ParallelLayout(pp: 2, microbatches: 4), cores: 4, waits: (full, over))).run()
        XCTAssertEqual(roomy.stepTime, StepSimulator(scenario: scenario(ParallelLayout(pp: 2, microbatches: 4), cores: 4)).run().stepTime)
        // A 4-rank ring on 2 cores: 2(n − 1) meetings per bucket; a 2-rank group meets once.
        let sim = StepSimulator(scenario: scenario(ParallelLayout(dp: 4), cores: 2, waits: (full, over)))
        XCTAssertEqual(sim.bucketSynchronization(group: 4).seconds, 6 * 0.5 * over / 2, accuracy: 1e-9)
        XCTAssertEqual(sim.bucketSynchronization(group: 2).seconds, 1 * 0.5 * over / 2, accuracy: 1e-9)
    }

    func testNearestMeasuredShapeIsUsed() {
        let c = KernelCalibration(gemm: [GEMMShape(m: 1024, n: 128, k: 128, transB: true): 80e9, GEMMShape(m: 64, n: 64, k: 64): 20e9],
                                  perElement: [:], cores: 1)
        XCTAssertEqual(c.rate(GEMMShape(m: 1024, n: 128, k: 128, transB: true)), 80e9)
        XCTAssertEqual(c.rate(GEMMShape(m: 900, n: 128, k: 100, transB: true)), 80e9)
        XCTAssertEqual(c.rate(GEMMShape(m: 50, n: 60, k: 64)), 20e9)
        XCTAssertEqual(c.missing, ElementKernel.allCases)
    }

    func testReaderTakesAMeasuredDeviceAndNamesBadKeys() throws {
        let yaml = """
        cluster:
          device:
            name: local
            cores: 2
            in_step: 1.1
            waiting: spin
            meeting_wait: 300 us
            oversubscribed_meeting_wait: 2000 us
            gemm:
              - {m: 64, n: 64, k: 64, trans: none, rate: 50 GFLOP/s}
            kernels:
              gelu_forward: 1.5 ns
          nodes: 1
          gpus_per_node: 2
          scale_up: {bandwidth: 2 GB/s, latency: 20 us}
        fabric: {topology: single-switch, link: {bandwidth: 2 GB/s, latency: 20 us}}
        workload: {model: gpt-tiny, batch: 8}
        layout: {dp: 2}
        """
        let s = try ScenarioReader(path: "c.yaml", text: yaml).read().base
        let c = try XCTUnwrap(s.device.calibration)
        XCTAssertEqual(c.cores, 2)
        XCTAssertEqual(c.inStep, 1.1)
        XCTAssertTrue(c.waitingSpins)
        XCTAssertEqual(c.meetingWait, 3e-4, accuracy: 1e-12)
        XCTAssertEqual(c.oversubscribedMeetingWait, 2e-3, accuracy: 1e-12)
        XCTAssertEqual(c.gemm[GEMMShape(m: 64, n: 64, k: 64)], 50e9)
        XCTAssertEqual(c.perElement[.geluForward]!, 1.5e-9, accuracy: 1e-15)
        XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: yaml.replacingOccurrences(of: "gelu_forward", with: "gelu_sideways")).read()) { error in
            XCTAssertTrue("\(error)".contains("gelu_sideways"), "\(error)")
            XCTAssertTrue("\(error)".contains("c.yaml:12"), "\(error)")
        }
        XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: yaml.replacingOccurrences(of: "waiting: spin", with: "waiting: sometimes")).read())
        XCTAssertFalse(c.hasRepeats, "no repeats recorded")

        // The repeats calibrate keeps: read in the rates' units, drawn from one by one.
        let repeated = yaml.replacingOccurrences(of: "rate: 50 GFLOP/s}", with: "rate: 50 GFLOP/s, repeats_gflops: [40, 50, 60]}")
            .replacingOccurrences(of: "      gelu_forward: 1.5 ns\n", with: "      gelu_forward: 1.5 ns\n    kernel_repeats_ns: {gelu_forward: [1, 1.5, 2]}\n    in_step_repeats: [1.0, 1.1, 1.2]\n"
                                  + "    wait_repeats_us: {meeting_wait: [0, 300, 900], oversubscribed_meeting_wait: [1500, 2000, 2500], network_meeting_wait: [5, 6, 7]}\n")
        let r = try XCTUnwrap(try ScenarioReader(path: "c.yaml", text: repeated).read().base.device.calibration)
        XCTAssertEqual(r.gemmRepeats[GEMMShape(m: 64, n: 64, k: 64)], [40e9, 50e9, 60e9])
        for (read, expected) in zip(r.perElementRepeats[.geluForward]!, [1e-9, 1.5e-9, 2e-9]) { XCTAssertEqual(read, expected, accuracy: 1e-20, "ns per element") }
        XCTAssertEqual(r.inStepRepeats, [1.0, 1.1, 1.2])
        let first = r.drawn { _ in 0 }, last = r.drawn { $0 - 1 }
        XCTAssertEqual(first.gemm[GEMMShape(m: 64, n: 64, k: 64)], 40e9)
        XCTAssertEqual(last.perElement[.geluForward]!, 2e-9, accuracy: 1e-18)
        XCTAssertEqual(first.inStep, 1.0)
        XCTAssertEqual(last.inStep, 1.2)
        // Steps taken after each round (two a round here) go with that round's kernels.
        var rounds = r
        rounds.gemmRepeats = [GEMMShape(m: 64, n: 64, k: 64): [40e9, 60e9]]
        rounds.inStepRepeats = [1.0, 1.01, 1.5, 1.51]
        let second = rounds.drawn { $0 == 2 ? 1 : 0 }
        XCTAssertEqual(second.gemm[GEMMShape(m: 64, n: 64, k: 64)], 60e9)
        XCTAssertEqual(second.inStep, 1.51, "round 2's second step")
        // The waits' repeats (µs; a wait of zero is a measurement), drawn like the kernels'. A
        // network wait never measured (one host) stays unmeasured whatever its repeats say.
        XCTAssertEqual(r.waitRepeats[.meeting]?.count, 3)
        XCTAssertEqual(first.meetingWait, 0)
        XCTAssertEqual(last.meetingWait, 9e-4, accuracy: 1e-12)
        XCTAssertEqual(first.oversubscribedMeetingWait, 1.5e-3, accuracy: 1e-12)
        XCTAssertEqual(last.oversubscribedMeetingWait, 2.5e-3, accuracy: 1e-12)
        XCTAssertNil(first.networkMeetingWait)
        XCTAssertEqual(r.drawn { $0 / 2 }.handoffWait, r.handoffWait, "no repeats: as calibrated")
        for bad in ["[0, -300, 900]", "300"] {
            XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: repeated.replacingOccurrences(of: "meeting_wait: [0, 300, 900]", with: "meeting_wait: \(bad)")).read()) { error in
                XCTAssertTrue("\(error)".contains("wait_repeats_us.meeting_wait must be"), "\(error)")
            }
        }
        for bad in ["repeats_gflops: [40, -1, 60]", "repeats_gflops: 40"] {
            XCTAssertThrowsError(try ScenarioReader(path: "c.yaml", text: repeated.replacingOccurrences(of: "repeats_gflops: [40, 50, 60]", with: bad)).read()) { error in
                XCTAssertTrue("\(error)".contains("gemm.repeats_gflops must be"), "\(error)")
            }
        }
    }
}

extension CalibratedDeviceTests {
    /// A pass meets its tensor-parallel group where it computed since it last met it: sequence
    /// parallelism's collectives that follow one another with nothing computed between (a
    /// reduce-scatter and the next norm's gather, a norm's gradient sum and the residual
    /// gradient's gather) meet once. gpt-tiny, one micro-batch: tp2 meets 2 + 2 times a layer;
    /// tp2·sp 2 forward (and once more at the first gather) and 4 backward (and once at the head).
    func testCollectivesBackToBackMeetOnce() {
        let wait = 1e-3
        func waited(_ layout: ParallelLayout) -> Double {
            StepSimulator(scenario: scenario(layout, cores: 2, waits: (wait, wait))).run().stepTime.seconds
                - StepSimulator(scenario: scenario(layout, cores: 2)).run().stepTime.seconds
        }
        let layers = Double(model.layers)
        XCTAssertEqual(waited(ParallelLayout(tp: 2)), 4 * layers * wait, accuracy: 1e-9)
        XCTAssertEqual(waited(ParallelLayout(tp: 2, sequenceParallel: true)), (1 + 2 * layers + 1 + 4 * layers) * wait, accuracy: 1e-9)
    }
}
