/// How a trainer runs inside its process, handed to it rather than kept in process-wide
/// variables or read from the environment: trainers on threads of one process (the in-process
/// ranks of tests) each keep their own. The CLI builds it from what it read once at start.
public struct ExecutionContext: Sendable {
    /// The order of sums whose leaves are all on one rank (per-sample gradients).
    public enum ReductionOrder: Sendable {
        /// Deterministic mode's fixed tree (`ReductionTree`).
        case tree
        /// Left to right, as a naive loop would: tests prove that a changed order is caught.
        case leftFoldForTesting
    }

    public var reductionOrder = ReductionOrder.tree
    /// Test hook: rank 0 dies halfway through writing the checkpoint of this step.
    public var killDuringCheckpoint: Int?

    public init(reductionOrder: ReductionOrder = .tree, killDuringCheckpoint: Int? = nil) {
        self.reductionOrder = reductionOrder
        self.killDuringCheckpoint = killDuringCheckpoint
    }
}
