import Engine
import Foundation
import Parallelism
import Workload

/// A layout's plan as data, what `fleet plan --json` prints: the mesh, the schedule's check
/// (bubble, in-flight activations), and every rank's step program op by op. `chunks` lists
/// the layer ranges a rank runs ([start, end) each; several when interleaved), `layers` the
/// one range when there is one.
public enum PlanRecord {
    public static func object(spec: ModelSpec, layout: ParallelLayout, schedule: PipelineSchedule,
                              report: ScheduleReport, programs: [StepProgram]) -> [String: Any] {
        let mesh = layout.mesh, plan = programs.first!.plan, stages = layout.stageLayers(model: spec)
        let ranks = programs.map { program -> [String: Any] in
            let rank = program.rank, c = program.coordinates, layers = stages[c.pp]
            let ops = program.blocks.flatMap { block in
                block.ops.map { op -> [String: Any] in
                    var fields = op.fields
                    fields["phase"] = block.phase.description
                    return fields
                }
            }
            var fields: [String: Any] = [
                "rank": rank, "dp": c.dp, "tp": c.tp, "pp": c.pp, "chunks": layers.map { [$0.lowerBound, $0.upperBound] },
                "parameters_held": plan.heldElements(stage: c.pp), "optimizer_parameters": Int(plan.optimizerElements(stage: c.pp)),
                "dp_group": mesh.dpGroup(of: rank), "tp_group": mesh.tpGroup(of: rank), "pp_group": mesh.ppGroup(of: rank),
                "ops": ops]
            // One contiguous range per stage unless interleaved.
            if layers.count == 1 { fields["layers"] = [layers[0].lowerBound, layers[0].upperBound] }
            return fields
        }
        return [
            "model": spec.name, "parameters": spec.parameterCount, "dp": layout.dp, "tp": layout.tp, "pp": layout.pp,
            "microbatches": layout.microbatches, "schedule": schedule.kind.rawValue, "virtual_stages": schedule.virtualStages,
            "world_size": layout.worldSize,
            "batch": programs.first!.options.batch, "sequence": programs.first!.options.sequence,
            "bucket_bytes": programs.first!.options.bucketBytes, "zero": layout.zeroStage, "sequence_parallel": layout.sequenceParallel,
            "bubble_fraction": report.bubbleFraction, "ideal_bubble_fraction": report.idealBubbleFraction,
            "peak_in_flight_activations": report.peakInFlightActivations, "ranks": ranks,
            "memory_per_stage": memory(spec: spec, layout: layout, report: report, options: programs.first!.options).map { m in
                ["stage": m.stage, "weights_bytes": m.weights, "gradients_bytes": m.gradients, "optimizer_bytes": m.optimizer,
                 "activation_bytes": m.activations, "total_bytes": m.total] as [String: Any]
            },
            "actions": schedule.actions.map { $0.map { "\($0)" } },
        ]
    }

    /// What one rank of each stage holds by the memory model the simulator uses, at fleet's fp32
    /// with the attention scores stored (no FlashAttention), activations for the passes the
    /// schedule keeps in flight at its peak.
    public static func memory(spec: ModelSpec, layout: ParallelLayout, report: ScheduleReport, options: StepOptions) -> [MemoryEstimate] {
        MemoryModel.stages(model: spec, layout: layout, zero: layout.zeroStage, microbatchSequences: layout.sequencesPerMicrobatch(batch: options.batch),
                           sequence: options.sequence, precision: .fp32, recompute: options.recompute ? .full : .none, flashAttention: false,
                           inFlight: report.peakInFlightActivations)
    }
}
