/// Every exercise `fleet lab` knows, in the order a course would take them.
public enum LabCatalog {
    public static let all: [Exercise] = [
        RingAllReduce(), CollectiveAlgorithms(), FabricOversubscription(), DataParallelScaling(), TensorParallelTraffic(),
        PipelineBubble(), InterleavedPipeline(), ZeROMemory(), ZeROSharding(), SequenceParallel(), MixtureOfExpertsExercise(), ContextParallel(), CheckpointCost(), YoungDaly(), FaultRecovery(), Stragglers(), UnevenFleet(), Determinism(), FleetScale(), EnergyCarbon(), InferenceServing(),
    ]

    public static func named(_ id: String) throws -> Exercise {
        guard let exercise = all.first(where: { $0.id == id }) else {
            throw LabError("no exercise '\(id)'; `fleet lab list` shows them: \(all.map(\.id).joined(separator: ", "))")
        }
        return exercise
    }
}
