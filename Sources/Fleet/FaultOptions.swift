import ArgumentParser
import FaultInjection
import Foundation
import Workflows
import Yams

/// `fleet train`'s fault-injection and recovery flags.
struct FaultOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Inject a fault (repeatable): crash:rank=1,step=30  hang:rank=0,step=5  slow:rank=2,factor=3,steps=10-20  "
        + "delay:rank=1,ms=50,steps=3-4  drop:rank=1,step=5  corrupt:rank=1,step=5  duplicate:rank=1,step=5  nan:rank=0,step=7  bitflip:rank=0,step=7,target=parameter  "
        + "checkpoint:rank=0,step=20,mode=full|torn", valueName: "kind:key=value,…"))
    var inject: [String] = []

    @Option(help: "A YAML fault plan: a list of {kind, rank, step or steps, …} entries (the same keys as --inject).")
    var faults: String?

    @Option(help: "Draw crashes at this rate per rank per step (exponential inter-arrival times).")
    var faultRate: Double = 0

    @Option(help: "Seed of --fault-rate.")
    var faultSeed: UInt64 = 1

    @Flag(help: "Follow every message with its CRC32C and a sequence number, checked on arrival (catches corrupted, duplicated and reordered messages).")
    var checksums = false

    @Option(help: "Compare the data-parallel replicas' parameters (CRC32C) every N steps, catching silent divergence (0: never).")
    var checkReplicas: Int = 0

    @Option(help: "Restart every worker from the newest valid checkpoint after a failure, up to N times (needs --checkpoint-dir).")
    var maxRestarts: Int = 0

    func validate() throws {
        guard maxRestarts >= 0 else { throw ValidationError("--max-restarts must not be negative") }
        guard faultRate >= 0 else { throw ValidationError("--fault-rate must not be negative") }
        guard checkReplicas >= 0 else { throw ValidationError("--check-replicas must not be negative") }
    }

    var isActive: Bool { !inject.isEmpty || faults != nil || faultRate > 0 || maxRestarts > 0 }

    /// This attempt's plan: faults act in the first attempt only, so a restarted run replays cleanly.
    func plan(worldSize: Int, steps: Int) throws -> FaultPlan {
        if Settings.current.attempt > 0 { return FaultPlan() }
        var specs = inject
        if let faults { specs += try Self.specs(fromYAML: faults) }
        var plan = try FaultPlan.parse(specs, worldSize: worldSize)
        // A fault planned past the last step would never fire, and the run would say nothing.
        if let late = plan.faults.first(where: { $0.steps.lowerBound > steps }) {
            throw FleetError("the fault \(late) is planned for step \(late.steps.lowerBound), but the run has --steps \(steps): it would never happen; "
                             + "plan it for a step from 1 to \(steps)")
        }
        plan.faults += FaultPlan.random(rate: faultRate, seed: faultSeed, ranks: worldSize, steps: steps).faults
        return plan
    }

    /// Turns a YAML list of fault mappings into --inject specs.
    static func specs(fromYAML path: String) throws -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw FleetError("cannot read the fault plan \(path)") }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw FleetError("\(path): not valid YAML: \(error)") }
        guard let list = node?.sequence ?? node?.mapping?["faults"]?.sequence else {
            throw FleetError("\(path): expected a list of faults, e.g.\n- {kind: crash, rank: 1, step: 30}")
        }
        return try list.map { entry in
            guard let mapping = entry.mapping, let kind = mapping["kind"]?.string else {
                throw FleetError("\(path):\(entry.mark?.line ?? 0): each fault needs kind: (and rank:, step: or steps:)")
            }
            let pairs = mapping.compactMap { key, value -> String? in
                guard let name = key.string, name != "kind" else { return nil }
                return "\(name)=\(value.string ?? "")"
            }
            return kind + ":" + pairs.joined(separator: ",")
        }
    }
}
