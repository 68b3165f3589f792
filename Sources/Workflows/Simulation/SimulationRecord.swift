import Engine
import Foundation

/// What `fleet simulate --json` prints for a simulated step and for a reliability run, as
/// ordered JSON fields: one definition of the keys for every command (and exercise) that
/// records a simulation.
public enum SimulationRecord {
    /// A sweep point's values, then (when it was simulated) the step, its breakdown, memory, energy and stages.
    /// `estimate`: the step's `RunEstimate`, made by the caller (once per point).
    public static func step(_ values: [(key: String, value: String)], _ s: Scenario?, _ r: StepReport?, estimate: RunEstimate?, problem: String?) -> [(String, Any)] {
        var fields: [(String, Any)] = values.map { ($0.key, $0.value) }
        if let s, let r {
            let b = r.breakdown
            fields += [("scenario", s.name), ("model", s.model.name), ("gpus", s.gpus), ("layout", s.layout.description),
                       ("step_s", r.stepTime.seconds), ("tokens_per_s", r.tokensPerSecond), ("mfu", r.mfu),
                       ("compute_s", b.compute.seconds), ("tensor_parallel_s", b.tensorParallel.seconds), ("alltoall_s", b.expertAllToAll.seconds), ("context_s", b.contextParallel.seconds),
                       ("pipeline_wait_s", b.pipelineWait.seconds), ("bubble_fraction", r.bubbleFraction),
                       ("dp_exposed_s", b.dataParallelExposed.seconds), ("optimizer_s", b.optimizer.seconds),
                       ("checkpoint_stall_s", b.checkpoint.seconds), ("data_stall_s", b.dataStall.seconds),
                       ("data_read_s", s.data.map { $0.readTime(s).seconds } ?? 0), ("memory_per_gpu_bytes", r.memory.total),
                       ("memory", JSONObject([("stage", r.memory.stage), ("weights_bytes", r.memory.weights), ("gradients_bytes", r.memory.gradients),
                                              ("optimizer_bytes", r.memory.optimizer), ("activations_bytes", r.memory.activations),
                                              ("total_bytes", r.memory.total), ("capacity_bytes", s.device.memoryBytes)])),
                       ("memory_capacity_bytes", s.device.memoryBytes), ("fits", problem == nil), ("fidelity", r.fidelity),
                       ("events", r.events), ("collective_choices", r.collectiveChoices), ("reductions", r.reductions),
                       ("parameters", s.model.parameterCount),
                       ("stages", r.stages.map { t -> [(String, Any)] in
                           [("parameters", t.parameters), ("flops", t.flops.count), ("dp_bytes", t.dataParallelBytes.count), ("tp_bytes", t.tensorParallelBytes.count),
                            ("pp_bytes", t.pipelineBytes.count)]
                       })]
            // On an asymmetric fleet: who sets the step, and what each element alone adds.
            if let rank = r.slowestRank {
                fields += [("slowest_rank", rank), ("critical_path", r.criticalPath ?? ""),
                           ("asymmetry", r.elementDelays.map { [("element", $0.element), ("delay_s", $0.delay.seconds)] as [(String, Any)] })]
            }
            // Power from the step's busy time, the fabric's size, and (with a budget) the whole run.
            if let estimate {
                fields.append(("energy_per_step_j", estimate.perStep.itKWh * 3.6e6))
                fields += RunEstimateText.record(s, estimate)
            }
        }
        if let problem { fields.append(("problem", problem)) }
        return fields
    }

    /// Goodput over the scenario's duration, its losses, failures per component and the interval sweep.
    public static func reliability(_ s: Scenario, _ model: ReliabilityModel, _ r: ReliabilityReport, sweep: (reports: [ReliabilityReport], best: ReliabilityReport)?, steps: Double) -> [(String, Any)] {
        var fields: [(String, Any)] = [("scenario", s.name), ("duration_s", model.duration), ("goodput", r.goodput), ("failures", r.failures),
                                       ("checkpoint_interval_s", model.checkpointInterval), ("checkpointing", model.checkpointing.rawValue),
                                       ("mtbf_s", model.clusterMTBF), ("checkpoint_write_s", model.checkpointWrite), ("checkpoint_stall_s", model.checkpointStall),
                                       ("reload_s", model.reload), ("useful_s", r.useful), ("rework_s", r.rework), ("restart_s", r.restart),
                                       ("checkpoint_stalls_s", r.checkpointStalls), ("stragglers_s", r.stragglers),
                                       ("maintenance_s", r.maintenance), ("preemptions_s", r.preemptions), ("steps", Int(steps)),
                                       ("young_daly_interval_s", model.youngDalyInterval),
                                       ("failure_probability", model.failureProbability(within: model.duration)),
                                       ("failure_probability_per_day", model.failureProbability(within: 86400)),
                                       ("expected_failures", model.expectedFailures(within: model.duration)),
                                       ("mtbf_by_component_s", JSONObject(model.failureShares.map { ($0.name, $0.mtbf) as (String, Any) }))]
        for (name, count) in r.failuresByComponent.sorted(by: { $0.key < $1.key }) { fields.append(("failures_\(name)", count)) }
        if let sweep {
            fields += [("optimal_interval_s", sweep.best.interval), ("optimal_goodput", sweep.best.goodput),
                       ("sweep_intervals_s", sweep.reports.map(\.interval)), ("sweep_goodput", sweep.reports.map(\.goodput))]
        }
        return fields
    }
}
