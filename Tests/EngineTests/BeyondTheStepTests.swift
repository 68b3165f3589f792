import Foundation
import XCTest
import Engine
import Workload

/// Energy identities, whole-run time and cost, and fabric sizes against their closed forms.
final class EnergyAndFabricTests: XCTestCase {
    func fabric(_ topology: Fabric.Topology, gpus: Int, perNode: Int = 8) -> FabricSizing {
        let link = Link(bandwidth: .gigabytesPerSecond(50), latency: SimTime(seconds: 1e-6))
        return FabricSizing(Fabric(gpus: gpus, gpusPerNode: perNode, topology: topology, scaleUp: link, scaleOut: link))
    }

    func testFullFatTreesHaveTheTextbookCounts() {
        for k in [4, 8, 16, 32, 48, 64] {
            let three = fabric(.fatTree(radix: k, tiers: 3, oversubscription: 1), gpus: k * k * k / 4, perNode: k / 2)
            XCTAssertEqual(three.endpoints, k * k * k / 4, "k = \(k)")
            XCTAssertEqual(three.switches, 5 * k * k / 4, "k = \(k): k² leaf and aggregation, k²/4 core")
            XCTAssertEqual(three.tiers.map(\.switches), [k * k / 2, k * k / 2, k * k / 4])
            XCTAssertEqual(three.cables, 3 * k * k * k / 4, "k = \(k): host, leaf–aggregation and aggregation–core links")
            XCTAssertEqual(three.bisection, Double(k * k * k / 8) * 50e9, "non-blocking: half the hosts at full rate")
            let two = fabric(.fatTree(radix: k, tiers: 2, oversubscription: 1), gpus: k * k / 2, perNode: k / 2)
            XCTAssertEqual(two.switches, 3 * k / 2, "k = \(k): k leaves, k/2 spines")
            XCTAssertEqual(two.cables, k * k, "k = \(k)")
        }
        let oversubscribed = fabric(.fatTree(radix: 64, tiers: 2, oversubscription: 3), gpus: 1024)
        XCTAssertEqual(oversubscribed.oversubscription, 3, accuracy: 0.01)
        XCTAssertEqual(oversubscribed.bisection, 512 * 50e9 / oversubscribed.oversubscription, accuracy: 1)
        XCTAssertEqual(fabric(.singleSwitch, gpus: 64).switches, 1)
        let torus = fabric(.torus(dimensions: [4, 4, 4]), gpus: 512)
        XCTAssertEqual(torus.switches, 64)
        XCTAssertEqual(torus.cables, 512 + 3 * 64, "a NIC each, and one wrap-around ring per dimension per router")
        XCTAssertEqual(torus.bisection, 2 * 16 * 50e9, "cutting a 4-ring twice per 4×4 plane")
    }

    static let yaml = """
        cluster: {device: H100, nodes: 16, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        fabric: {topology: fat-tree, radix: 64, tiers: 2, link: {bandwidth: 400 Gb/s, latency: 1 us}}
        workload: {model: llama-8b, batch: 256, sequence: 4096, efficiency: 0.5, tokens: 1e12}
        layout: {dp: 16, tp: 8}
        energy: {device_idle: 100 W, node_overhead: 1 kW, switch_power: 500 W, pue: 1.25, grid: 400 g/kWh, wue: 2 L/kWh, embodied_per_device: 1500 kg, lifetime: 4 y}
        cost: {gpu_hour: 3, switch: 20000, cable: 500}
        """

    func testEnergyFollowsTheStepsBusyTimeAndTheIdentitiesHold() throws {
        let s = try ScenarioReader(path: "e.yaml", text: Self.yaml).read().base
        let r = StepSimulator(scenario: s).run()
        let e = RunEstimate(s, r)
        let u = r.breakdown.compute.seconds / r.stepTime.seconds
        XCTAssertEqual(e.energy.utilisation, u, accuracy: 1e-12)
        XCTAssertEqual(e.energy.devicePower, 100 + 600 * u, accuracy: 1e-9, "idle + (TDP − idle) × busy share, not TDP")
        XCTAssertLessThan(e.energy.devicePower, 700)
        let switches = Double(e.fabric.switches)
        XCTAssertEqual(e.energy.itPower, 128 * e.energy.devicePower + 16 * 1000 + switches * 500, accuracy: 1e-6)
        XCTAssertEqual(e.perStep.itKWh, e.energy.itPower * r.stepTime.seconds / 3.6e6, accuracy: 1e-12)
        XCTAssertEqual(e.perStep.facilityKWh, e.perStep.itKWh * 1.25, accuracy: 1e-12)
        XCTAssertEqual(e.perStep.carbonKg, e.perStep.facilityKWh * 0.4, accuracy: 1e-12)
        XCTAssertEqual(e.perStep.waterL, e.perStep.itKWh * 2, accuracy: 1e-12)
        XCTAssertEqual(e.perToken.itKWh * Double(256 * 4096), e.perStep.itKWh, accuracy: 1e-12)

        let t = try XCTUnwrap(e.time)
        XCTAssertEqual(t.steps, Int((1e12 / Double(256 * 4096)).rounded(.up)), "a token budget rounds up to whole steps")
        XCTAssertEqual(t.wallSeconds, Double(t.steps) * r.stepTime.seconds, accuracy: 1e-6, "no reliability section: goodput 1")
        XCTAssertEqual(t.gpuHours, 128 * t.wallSeconds / 3600, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(t.cost), t.gpuHours * 3, accuracy: 1e-6)
        let run = try XCTUnwrap(e.run)
        XCTAssertEqual(run.facilityKWh, e.energy.itPower * t.wallSeconds / 3.6e6 * 1.25, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(run.embodiedKg), 1500 * 128 * t.wallSeconds / (4 * 365 * 86400), accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(e.fabricCost), switches * 20000 + Double(e.fabric.cables) * 500, accuracy: 1e-6)
    }

    func testFailuresLengthenTheRunByTheirGoodput() throws {
        let yaml = Self.yaml + """

            reliability: {duration: 7 d, checkpoint_interval: 30 min, components: [{name: gpu, per: gpu, mttf: 5000 h}]}
            storage: {aggregate: 1 TB/s, per_client: 5 GB/s, latency: 5 ms}
            """
        let s = try ScenarioReader(path: "e.yaml", text: yaml).read().base
        let r = StepSimulator(scenario: s).run()
        let goodput = s.reliabilityModel(s.reliability!, step: r).simulate().goodput
        XCTAssertLessThan(goodput, 1)
        let t = try XCTUnwrap(RunEstimate(s, r).time)
        XCTAssertEqual(t.goodput, goodput)
        XCTAssertEqual(t.wallSeconds, t.computeSeconds / goodput, accuracy: 1e-6)
    }

    func testBadEnergyAndCostValuesNameTheirLine() {
        func error(_ yaml: String) -> String {
            do { _ = try ScenarioReader(path: "e.yaml", text: yaml).read(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(error(Self.yaml), "no error")
        let pue = Self.yaml.replacingOccurrences(of: "pue: 1.25", with: "pue: 0.8")
        XCTAssertTrue(error(pue).contains("e.yaml:5:") && error(pue).contains("energy.pue"), error(pue))
        let grid = Self.yaml.replacingOccurrences(of: "grid: 400 g/kWh", with: "grid: mars")
        XCTAssertTrue(error(grid).contains("energy.grid must be a carbon intensity") && error(grid).contains("quebec"), error(grid))
        let idle = Self.yaml.replacingOccurrences(of: "device_idle: 100 W", with: "device_idle: 900 W")
        XCTAssertTrue(error(idle).contains("cannot exceed the device's TDP"), error(idle))
        let both = Self.yaml.replacingOccurrences(of: "tokens: 1e12", with: "tokens: 1e12, steps: 10")
        XCTAssertTrue(error(both).contains("e.yaml:3:") && error(both).contains("tokens or steps, not both"), error(both))
        let noBudget = Self.yaml.replacingOccurrences(of: ", tokens: 1e12", with: "")
        XCTAssertTrue(error(noBudget).contains("cost.gpu_hour prices a whole run"), error(noBudget))
        let price = Self.yaml.replacingOccurrences(of: "gpu_hour: 3", with: "gpu_hour: -3")
        XCTAssertTrue(error(price).contains("cost.gpu_hour must be a price"), error(price))
        let unit = Self.yaml.replacingOccurrences(of: "node_overhead: 1 kW", with: "node_overhead: 1 kWh")
        XCTAssertTrue(error(unit).contains("energy.node_overhead must be a number with a unit"), error(unit))
    }

    func testTheShippedFatTreeScenarioIsAFullThreeTierTree() throws {
        let s = try ScenarioReader(path: EngineTests.scenarios + "/llama-70b-fat-tree-8k.yaml").read().base
        let sizing = FabricSizing(s.fabric)
        XCTAssertEqual(sizing.endpoints, 32 * 32 * 32 / 4)
        XCTAssertEqual(sizing.switches, 5 * 32 * 32 / 4)
        XCTAssertNotNil(RunEstimate(s, StepSimulator(scenario: s).run()).time?.cost)
    }
}

/// Failure statistics against their closed forms.
final class FailureStatisticsTests: XCTestCase {
    func testProbabilitiesExpectedFailuresAndShares() {
        let hour = 3600.0
        var model = ReliabilityModel(components: [.init(name: "gpu", count: 16_384, mttf: 50_000 * hour), .init(name: "host", count: 2_048, mttf: 20_000 * hour)],
                                     duration: 7 * 86400, checkpointInterval: 1800, checkpointWrite: 30, reload: 30)
        let mtbf = 1 / (16_384 / (50_000 * hour) + 2_048 / (20_000 * hour))
        XCTAssertEqual(model.clusterMTBF, mtbf, accuracy: 1e-6)
        XCTAssertEqual(model.failureProbability(within: hour), 1 - exp(-hour / mtbf), accuracy: 1e-12)
        XCTAssertEqual(model.expectedFailures(within: 7 * 86400), 7 * 86400 / mtbf, accuracy: 1e-9)
        XCTAssertEqual(model.failureShares.reduce(0) { $0 + $1.share }, 1, accuracy: 1e-12)
        XCTAssertEqual(model.failureShares[0].mtbf, 50_000 * hour / 16_384, accuracy: 1e-6)
        // Weibull of shape 1 is the exponential; shape < 1 fails more early on.
        model.components[1].distribution = .weibull(shape: 1)
        XCTAssertEqual(model.failureProbability(within: hour), 1 - exp(-hour / mtbf), accuracy: 1e-12)
        model.components[1].distribution = .weibull(shape: 0.7)
        XCTAssertGreaterThan(model.failureProbability(within: hour), 1 - exp(-hour / mtbf))
        XCTAssertEqual(model.failureProbability(within: 365 * 86400), 1, accuracy: 1e-12, "no underflow to 0 over 18,432 parts")
    }

    func testAnnouncedStopsTakeTimeButNoWork() {
        var model = ReliabilityModel(components: [.init(name: "gpu", count: 1024, mttf: 1e6 * 3600)], duration: 30 * 86400,
                                     checkpointInterval: 1800, checkpointWrite: 60, reload: 120)
        model.rescheduling = 300
        let base = model.simulate()
        model.maintenance = (every: 7 * 86400, lasts: 4 * 3600)
        model.preemptions = (meanInterval: 2 * 86400, wait: 1800)
        let stopped = model.simulate()
        // 4 windows in 30 days, each 4 h plus rescheduling and reload; 15 expected preemptions, each a save at the notice, the wait, rescheduling and reload.
        XCTAssertEqual(stopped.maintenance, 4 * (4 * 3600 + 300 + 120), accuracy: 1e-6)
        XCTAssertEqual(stopped.preemptions, 15 * (60 + 1800 + 300 + 120), accuracy: 1e-6)
        XCTAssertEqual(stopped.rework + stopped.restart + stopped.checkpointStalls + stopped.stragglers + stopped.useful + stopped.maintenance + stopped.preemptions,
                       stopped.wall, accuracy: 1e-6 * stopped.wall)
        XCTAssertLessThan(stopped.goodput, base.goodput)
    }
}

/// Collective choice: auto takes the fastest, the double binary tree's closed form, the crossover.
final class CollectiveChoiceTests: XCTestCase {
    func model(gpus: Int = 16) -> (CollectiveModel, [Int]) {
        let link = Link(bandwidth: .gigabytesPerSecond(50), latency: SimTime(seconds: 1e-6))
        let fabric = Fabric(gpus: gpus, gpusPerNode: 1, topology: .singleSwitch, scaleUp: link, scaleOut: link)
        return (CollectiveModel(network: AnalyticalNetwork(fabric: fabric)), Array(0..<gpus))
    }

    func testAutoIsTheFastestConcreteAlgorithm() {
        let (m, group) = model()
        for bytes in [1e3, 1e5, 1e7, 1e9] {
            let best = CollectiveModel.Algorithm.concrete.map { m.allReduce(group, bytes: bytes, algorithm: $0) }.min()!
            XCTAssertEqual(m.allReduce(group, bytes: bytes, algorithm: .auto), best)
            XCTAssertTrue(CollectiveModel.Algorithm.halving.contains(m.fastest(group, bytes: bytes, part: .reduceScatter).algorithm))
        }
    }

    func testDoubleBinaryTreeClosedForms() {
        let (m, group) = model()
        // Large buffers: every rank sends and receives 2·S over its NIC, like the ring.
        let s = 1e9
        XCTAssertEqual(m.allReduce(group, bytes: s, algorithm: .doubleBinaryTree).seconds, 2 * s / 50e9, accuracy: 0.05 * 2 * s / 50e9)
        // Small buffers: 2·⌊log₂ n⌋ pipeline steps, each two hops of 1 µs — logarithmic, where the ring pays 2(n − 1).
        let small = m.allReduce(group, bytes: 8, algorithm: .doubleBinaryTree).seconds
        XCTAssertEqual(small, 2 * 4 * 2e-6, accuracy: 1e-7)
        XCTAssertLessThan(small, m.allReduce(group, bytes: 8, algorithm: .ring).seconds / 3)
    }

    func testTheCrossoverIsWhereRingAndTreeMeet() {
        let (m, group) = model(gpus: 64)
        let ring = { (b: Double) in m.allReduce(group, bytes: b, algorithm: .ring).seconds }
        let tree = { (b: Double) in m.allReduce(group, bytes: b, algorithm: .tree).seconds }
        // α–β forms: ring 2(n−1)(2α) + 2(n−1)/n·S/β, tree 2·log₂n·(2α + S/β): equal at S* below.
        let (n, alpha, beta) = (64.0, 2e-6, 50e9)
        let closed = (2 * (n - 1) - 2 * log2(n)) * alpha / ((2 * log2(n) - 2 * (n - 1) / n) / beta)
        XCTAssertEqual(ring(closed), tree(closed), accuracy: 1e-3 * ring(closed))
        XCTAssertLessThan(ring(closed * 1.5), tree(closed * 1.5))
        XCTAssertGreaterThan(ring(closed / 1.5), tree(closed / 1.5))
    }

    func testAutoNamesItsChoicesAndTreesCannotServeZeRO() throws {
        let yaml = """
            cluster: {device: H100, nodes: 16, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
            fabric: {topology: fat-tree, radix: 64, tiers: 2, link: {bandwidth: 400 Gb/s, latency: 1 us}}
            workload: {model: llama-8b, batch: 128, sequence: 4096}
            layout: {dp: 16, tp: 8, zero: 1}
            collectives: {data_parallel: auto, tensor_parallel: auto}
            """
        let s = try ScenarioReader(path: "a.yaml", text: yaml).read().base
        let report = StepSimulator(scenario: s).run()
        XCTAssertTrue(report.collectiveChoices.contains { $0.hasPrefix("tensor-parallel all-reduce") }, "\(report.collectiveChoices)")
        XCTAssertTrue(report.collectiveChoices.contains { $0.hasPrefix("data-parallel reduce-scatter") }, "\(report.collectiveChoices)")
        let dbt = yaml.replacingOccurrences(of: "data_parallel: auto", with: "data_parallel: double-binary-tree")
        XCTAssertThrowsError(try ScenarioReader(path: "a.yaml", text: dbt).read()) { error in
            XCTAssertTrue("\(error)".contains("a.yaml:5:") && "\(error)".contains("double-binary-tree cannot do"), "\(error)")
        }
    }
}

/// The input pipeline: reads from the shared file system and a node cache, hidden behind the step.
final class InputPipelineTests: XCTestCase {
    static let yaml = """
        cluster: {device: H100, nodes: 128, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        fabric: {topology: fat-tree, radix: 64, tiers: 3, link: {bandwidth: 400 Gb/s, latency: 1 us}}
        storage: {aggregate: 100 GB/s, per_client: 4 GB/s, latency: 5 ms}
        workload: {model: llama-8b, batch: 2048, sequence: 2048, efficiency: 0.5}
        layout: {dp: 128, tp: 8, microbatches: 8, zero: 1, recompute: full}
        data: {bytes_per_sample: 64 MB}
        """

    func testTheReadIsTheSlowerTierAndOnlyItsExcessStalls() throws {
        let s = try ScenarioReader(path: "d.yaml", text: Self.yaml).read().base
        let data = try XCTUnwrap(s.data)
        let batch = 2048 * 64e6
        XCTAssertEqual(data.batchBytes(s), batch)
        XCTAssertEqual(data.readers(s), 128)
        // Shared file system: the aggregate (1.31 s) binds before each node's 4 GB/s (0.26 s); plus the latency.
        XCTAssertEqual(data.readTime(s).seconds, batch / 100e9 + 0.005, accuracy: 1e-6)
        let report = StepSimulator(scenario: s).run()
        let b = report.breakdown
        let busy = b.compute + b.tensorParallel + b.pipelineWait + b.dataParallelExposed + b.optimizer + b.checkpoint
        XCTAssertEqual(b.dataStall.seconds, max(0, data.readTime(s).seconds - busy.seconds), accuracy: 1e-6)
        XCTAssertGreaterThan(b.dataStall, .zero, "this cluster is storage-bound")
        XCTAssertEqual(report.stepTime, busy + b.dataStall)

        // A cache holding 60 % serves it at 12 GB/s per node in parallel: the misses alone bind.
        let cached = try ScenarioReader(path: "d.yaml", text: Self.yaml.replacingOccurrences(of: "data: {bytes_per_sample: 64 MB}",
                                                                                             with: "data: {bytes_per_sample: 64 MB, cache: {hit_rate: 0.6, bandwidth: 12 GB/s}}")).read().base
        XCTAssertEqual(try XCTUnwrap(cached.data).readTime(cached).seconds, 0.4 * batch / 100e9 + 0.005, accuracy: 1e-6)
        XCTAssertEqual(StepSimulator(scenario: cached).run().breakdown.dataStall, .zero)
    }

    func testBadDataSectionsNameTheirLine() {
        func error(_ yaml: String) -> String {
            do { _ = try ScenarioReader(path: "d.yaml", text: yaml).read(); return "no error" } catch { return "\(error)" }
        }
        let noStorage = Self.yaml.replacingOccurrences(of: "storage: {aggregate: 100 GB/s, per_client: 4 GB/s, latency: 5 ms}\n", with: "")
        XCTAssertTrue(error(noStorage).contains("data is read from storage"), error(noStorage))
        let rate = Self.yaml.replacingOccurrences(of: "{bytes_per_sample: 64 MB}", with: "{bytes_per_sample: 64 MB, cache: {hit_rate: 1.5, bandwidth: 1 GB/s}}")
        XCTAssertTrue(error(rate).contains("d.yaml:6:") && error(rate).contains("hit_rate"), error(rate))
        let none = Self.yaml.replacingOccurrences(of: "{bytes_per_sample: 64 MB}", with: "{cache: {hit_rate: 0.5, bandwidth: 1 GB/s}}")
        XCTAssertTrue(error(none).contains("data needs bytes_per_token"), error(none))
    }
}

/// Serving: one request against the roofline, queueing at low load, and bad values.
final class ServingTests: XCTestCase {
    func scenario(tp: Int = 1) -> ServingScenario {
        var s = ServingScenario(name: "t", device: DeviceCatalog.h100, model: ModelCatalog.llama8B,
                                scaleUp: Link(bandwidth: .gigabytesPerSecond(450), latency: SimTime(seconds: 2e-6)),
                                rate: 1, prompt: .fixed(1000), output: .fixed(100), duration: 60)
        s.tp = tp
        return s
    }

    func testOneRequestPrefillIsComputeBoundAndDecodeBandwidthBound() {
        let s = scenario()
        let n = Double(ModelCatalog.llama8B.parameterCount), weights = n * 2
        let r = ServingSimulator.run(s, arrivals: [(arrival: 1, prompt: 1000, output: 100)])
        // Prefill: 2N FLOPs per token (plus attention) at half of 989 TFLOP/s; far above the weights' read.
        let prefill = 2 * n * 1000 / (989e12 * 0.5)
        XCTAssertGreaterThan(prefill, weights / 3350e9 * 3)
        XCTAssertEqual(r.ttft.p50, prefill, accuracy: 0.05 * prefill)
        // Decode: each token reads every weight and the KV cache so far — memory-bound.
        let decode = (weights + 1050 * s.kvBytesPerToken) / 3350e9
        XCTAssertEqual(r.tpot.p50, decode, accuracy: 0.05 * decode)
        XCTAssertEqual(r.requests, 1)
    }

    func testAtLowLoadThereIsNoQueue() {
        var s = scenario()
        let alone = ServingSimulator.run(s, arrivals: [(arrival: 0, prompt: 1000, output: 100)])
        let service = alone.ttft.p50 + 99 * alone.tpot.p50
        s.rate = 0.02 / service            // 2 % utilisation
        s.duration = 2000 * service / 0.02 / 100
        let light = ServingSimulator.run(s)
        XCTAssertGreaterThan(light.requests, 10)
        XCTAssertEqual(light.ttft.p50, alone.ttft.p50, accuracy: 0.02 * alone.ttft.p50, "a request rarely finds another in the system")
        XCTAssertLessThan(light.kvOccupancy.mean, 0.05)
        s.rate *= 40                        // 80 %: queueing lengthens the tail
        XCTAssertGreaterThan(ServingSimulator.run(s).ttft.p99, light.ttft.p99)
    }

    func testDisaggregationHandsTheCacheOverAndKeepsPrefillsOutOfDecodes() {
        var s = scenario()
        s.instances = 2
        let together = ServingSimulator.run(s, arrivals: [(arrival: 0, prompt: 1000, output: 100)])
        s.prefillInstances = 1
        s.handoverBandwidth = 10e9
        let apart = ServingSimulator.run(s, arrivals: [(arrival: 0, prompt: 1000, output: 100)])
        XCTAssertEqual(apart.ttft.p50, together.ttft.p50, accuracy: 1e-12, "the first token comes with the prefill either way")
        let handover = 1000 * s.kvBytesPerToken / 10e9
        XCTAssertEqual(apart.tpot.p50, (handover + 99 * together.tpot.p50) / 99, accuracy: 0.01 * together.tpot.p50)
        // Under load, decodes no longer wait behind other requests' prefills.
        s.instances = 4
        s.prefillInstances = nil
        s.rate = 8
        s.prompt = .exponential(mean: 1000)
        let colocated = ServingSimulator.run(s)
        s.prefillInstances = 1
        XCTAssertLessThan(ServingSimulator.run(s).tpot.p99, colocated.tpot.p99)
    }

    func testServingScenariosAreCheckedWithTheirLine() throws {
        let good = try String(contentsOfFile: EngineTests.scenarios + "/llama-70b-serving.yaml", encoding: .utf8)
        let s = try XCTUnwrap(try ScenarioReader(path: "s.yaml", text: good).readServing())
        XCTAssertEqual(s.instances, 4)
        XCTAssertNotNil(ServingSimulator.highestRate(s))
        func error(_ text: String) -> String {
            do { _ = try ScenarioReader(path: "s.yaml", text: text).readServing(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(good.replacingOccurrences(of: "rate: 8 ", with: "rate: -8 ")).contains("serving.rate"), error(good.replacingOccurrences(of: "rate: 8 ", with: "rate: -8 ")))
        let tp = good.replacingOccurrences(of: "tp: 8", with: "tp: 16")
        XCTAssertTrue(error(tp).contains("serving.tp must be a whole number from 1 to 8"), error(tp))
        let small = good.replacingOccurrences(of: "tp: 8", with: "tp: 1")
        XCTAssertTrue(error(small).contains("do not fit in 1 × H100"), error(small))
        let split = good.replacingOccurrences(of: "  max_batch: 128", with: "  max_batch: 128\n  disaggregation: {prefill_instances: 4}")
        XCTAssertTrue(error(split).contains("prefill_instances must be a whole number from 1 to 3"), error(split))
        let unknown = good.replacingOccurrences(of: "max_batch:", with: "max_bach:")
        XCTAssertTrue(error(unknown).contains("did you mean 'max_batch'"), error(unknown))
    }
}
