import Parallelism

extension StepSimulator {
    /// Simulates the step. A uniform fleet is one pipeline, (dp 0, tp 0), standing for all.
    /// An asymmetric one (slow nodes, degraded NICs, mixed devices, stragglers) simulates
    /// exactly the pipelines holding an asymmetric GPU, and a uniform one, and reports the
    /// slowest: the data-parallel sum makes every replica wait for it. It names the rank that
    /// sets the step and what each asymmetric element alone adds.
    public func run() -> StepReport { run(everyPipeline: false) }

    /// The step time alone: on an asymmetric fleet `run()` also simulates the uniform fleet and
    /// each asymmetric element on its own (their delays), which a caller wanting only the time —
    /// compare's hundred draws per layout — need not pay for.
    public func stepTime() -> SimTime {
        scenario.asymmetry.isEmpty ? run(pipeline: (0, 0)).stepTime : slowestPipeline(every: false).stepTime
    }

    func run(everyPipeline: Bool) -> StepReport {
        let s = scenario
        guard everyPipeline || !s.asymmetry.isEmpty else { return run(pipeline: (0, 0)) }
        var report = slowestPipeline(every: everyPipeline)
        guard !s.asymmetry.isEmpty else { return report }
        let symmetric: StepReport = {
            var uniform = s
            uniform.asymmetry = Asymmetry()
            return StepSimulator(scenario: uniform).run()
        }()
        let elements = s.asymmetry.elements(gpusPerNode: s.gpusPerNode, gpus: s.gpus)
        // Each element alone, against the uniform fleet (the first 32; the rest are summed in the step).
        for element in elements.prefix(Self.elementLimit) {
            var alone = s
            alone.asymmetry = element.alone
            let step = StepSimulator(scenario: alone).slowestPipeline(every: false).stepTime
            report.elementDelays.append(StepReport.ElementDelay(element: element.name, delay: max(.zero, step - symmetric.stepTime)))
        }
        if elements.count > Self.elementLimit {
            report.reductions += "; delays listed for the first \(Self.elementLimit) of \(elements.count) asymmetric elements"
        }
        return report
    }

    /// Asymmetric elements whose delay is simulated one by one.
    static let elementLimit = 32

    /// Every pipeline holding an asymmetric GPU, and (0, 0) — or, `every`, all of them; the
    /// slowest, with its critical path when the fleet is asymmetric.
    func slowestPipeline(every: Bool) -> StepReport {
        let s = scenario, mesh = s.layout.mesh
        var chosen: Set<[Int]> = [[0, 0]]
        if every {
            for dp in 0..<s.layout.dp { for tp in 0..<s.layout.tp { chosen.insert([dp, tp]) } }
        }
        // The pipelines of one replica share their stages' tensor-parallel groups, so they
        // compute alike: one stands for all, unless a degraded NIC makes their rings differ.
        for gpu in s.asymmetricGPUs where gpu < mesh.worldSize && !every {
            let c = mesh.coordinates(of: gpu)
            chosen.insert([c.dp, s.asymmetry.degradedNodes[gpu / s.gpusPerNode] != nil ? c.tp : 0])
        }
        let pipelines = chosen.map { (dp: $0[0], tp: $0[1]) }.sorted { ($0.dp, $0.tp) < ($1.dp, $1.tp) }
        let pricing = StepPricing(simulator: self)
        let (dp, tp, events) = slowest(of: pipelines, pricing: pricing)
        var report = run(pipeline: (dp, tp), pricing: pricing, everyPipeline: every)
        report.events = events
        guard !s.asymmetry.isEmpty else { return report }
        if !every {
            report.reductions = "asymmetric fleet: \(pipelines.count) of \(s.layout.dp * s.layout.tp) pipelines simulated (each holding a slow, "
                + "straggling, other-device, degraded-NIC or unequal-core GPU — one per replica when only compute differs —, and a uniform one), the slowest (dp \(dp), tp \(tp)) reported, "
                + "its data-parallel peers taken as waiting for it; each collective is timed on its real group's routes"
        }
        // The stage that computes longest sets the pipeline's pace; in it, the slowest member of its tensor-parallel group.
        var busy = Array(repeating: 0.0, count: s.layout.pp)
        for span in report.spans where span.lane == "compute" { busy[span.stage] += (span.end - span.start).seconds }
        let stage = busy.indices.max { busy[$0] < busy[$1] } ?? 0
        let group = mesh.tpGroup(of: mesh.rank(dp: dp, tp: tp, pp: stage))
        func pace(_ gpu: Int) -> Double { s.slowdown(of: gpu) / max(1e-30, s.device(of: gpu).peak(s.precision)) }
        let rank = group.max { pace($0) < pace($1) } ?? group[0]
        var why: [String] = []
        let slowdown = s.slowdown(of: rank)
        if slowdown > 1 { why.append("computes \(Asymmetry.format(slowdown))× slower") }
        if slowdown < 1 { why.append("computes \(Asymmetry.format(1 / slowdown))× faster") }
        if s.device(of: rank).name != s.device.name { why.append("is a different device (\(s.device(of: rank).name))") }
        if let factor = s.asymmetry.degradedNodes[rank / s.gpusPerNode] { why.append("its node's NICs run at \(Asymmetry.format(factor))× bandwidth") }
        report.slowestRank = rank
        report.criticalPath = "pipeline (dp \(dp), tp \(tp)), stage \(stage): rank \(rank) on node \(rank / s.gpusPerNode)"
            + (why.isEmpty ? " (a uniform rank, the busiest of its pipeline: the schedule and the network set this step more than any asymmetric GPU)" : " " + why.joined(separator: ", "))
        return report
    }
}
