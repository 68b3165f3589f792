import Parallelism

extension StepSimulator {
    /// Full fidelity: every pipeline — each data-parallel replica's each tensor shard's chain
    /// of stages, on its own GPUs, devices and routes — simulated event by event, and the
    /// slowest reported (the data-parallel sums make every replica wait for it). Nothing is
    /// assumed symmetric; what is exactly the same is priced once (a stage's program, a
    /// group's collective, a GPU pair's message), and only the reported pipeline keeps its
    /// timeline. An asymmetric fleet's report also names its critical path, as `run()` does.
    public func runEveryPipeline() -> StepReport { run(everyPipeline: true) }

    /// Simulates `pipelines` (dp, tp) event by event without their timelines: the slowest
    /// (the first of equals) and the events it took to find it.
    func slowest(of pipelines: [(dp: Int, tp: Int)], pricing: StepPricing) -> (dp: Int, tp: Int, events: Int) {
        let s = scenario, layout = s.layout, mesh = layout.mesh, schedule = layout.pipeline
        var slowest: (finish: SimTime, dp: Int, tp: Int)?
        var events = 0
        for (dp, tp) in pipelines {
            let gpus = (0..<layout.pp).map { mesh.rank(dp: dp, tp: tp, pp: $0) }
            var pipeline = PipelineRun(schedule: schedule, costs: stageCosts(pipeline: (dp, tp), pricing: pricing),
                                       transfer: { pricing.transfer(from: gpus[$0], to: gpus[$1]) },
                                       sharing: sharing(gpus), recordsSpans: false)
            pipeline.run()
            events += pipeline.events
            let finish = pipeline.finish.max() ?? .zero
            if slowest == nil || finish > slowest!.finish { slowest = (finish, dp, tp) }
        }
        return (slowest!.dp, slowest!.tp, events)
    }
}
