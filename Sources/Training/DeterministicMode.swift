import Parallelism
import Tensor
import Workload

/// `--deterministic`: every layout reproduces the single-process run bit for bit.
///
/// Orders it fixes (each a `ReductionTree`): parameter gradients are formed per sample and
/// summed over the global batch's samples in tree order (within a micro-batch, across
/// micro-batches, then across data-parallel ranks by an ordered all-reduce); products that
/// tensor parallelism splits are formed per attention head and summed over the heads in
/// tree order; a LayerNorm's parameter gradient is summed over a sample's positions in tree
/// order (a sequence-parallel shard holds a node); the tied embedding's two parts are summed separately and added last; the
/// loss and the gradient norm are summed per sample and per (tensor, head) block in a fixed
/// order. Everything else (per-row kernels, attention per head, AdamW) is already
/// independent of the layout and of the thread count.
public enum DeterministicMode {
    public enum Unsupported: Error, CustomStringConvertible {
        case layout(String)
        public var description: String { switch self { case .layout(let text): return text } }
    }

    /// Rejects a BLAS kernel whose products change when split into pieces (over threads, ranks or
    /// shards): with it no layout can give the single-process bits. fleet chooses a kernel that
    /// passes unless the user pinned one (OPENBLAS_CORETYPE, FLEET_BLAS_KERNEL).
    public static func checkKernel() throws {
        guard let failure = BLASKernelCheck.splitInvariance() else { return }
        throw Unsupported.layout("--deterministic needs a BLAS kernel whose products do not depend on how they are split, and OpenBLAS's \(BLAS.coreName) "
            + "computes other bits in pieces (\(failure)); unset OPENBLAS_CORETYPE and FLEET_BLAS_KERNEL so fleet chooses a kernel that passes (fleet blas shows it), or drop --deterministic")
    }

    /// Rejects layouts whose partial sums are not nodes of the canonical trees, with what to change.
    public static func check(_ layout: ParallelLayout, model: ModelSpec, batch: Int, sequence: Int) throws {
        guard model.dModel % model.heads == 0, model.mlpHidden % model.heads == 0 else {
            throw Unsupported.layout("--deterministic needs \(model.name)'s width and MLP width divisible by its \(model.heads) heads")
        }
        let samples = ReductionTree(leaves: batch)
        if layout.cp > 1 && !samples.isAligned(parts: layout.dp * layout.microbatches) {
            throw Unsupported.layout("--deterministic with --cp \(layout.cp) forms each sequence's gradients on one rank of its context-parallel group, so every one of the --dp \(layout.dp) ranks "
                + "needs its own node of the pairwise summation tree over the batch (\(layout.microbatches) micro-batch(es) each): a batch of \(batch) sequences does not give that; "
                + "use --batch \(layout.dp * layout.microbatches) (or that times a power of two), or drop --deterministic")
        }
        if !samples.isAligned(parts: layout.dp) {
            throw Unsupported.layout("--deterministic cannot split a batch of \(batch) sequences exactly over --dp \(layout.dp): "
                + "each rank's share must be a node of the pairwise summation tree (use a batch that is the dp degree times a power of two, e.g. \(layout.dp * 4))")
        }
        if !samples.isAligned(parts: layout.dp * layout.microbatches) {
            throw Unsupported.layout("--deterministic cannot split a batch of \(batch) sequences into \(layout.dp * layout.microbatches) micro-batches exactly: "
                + "use a micro-batch count whose shares are nodes of the pairwise summation tree (a power of two dividing the batch)")
        }
        if layout.ep > 1 && !samples.isAligned(parts: layout.dp / layout.ep) {
            throw Unsupported.layout("--deterministic sums each routed expert's gradient over its expert-parallel group's samples first, and a batch of \(batch) sequences "
                + "does not split into \(layout.dp / layout.ep) such groups of --ep \(layout.ep) replicas on nodes of the pairwise summation tree; use a batch that is --dp times a power of two")
        }
        if !ReductionTree(leaves: model.heads).isAligned(parts: layout.tp) {
            throw Unsupported.layout("--deterministic cannot split \(model.name)'s \(model.heads) heads exactly over --tp \(layout.tp): "
                + "each shard's heads must be a node of the pairwise summation tree over heads (try --tp \(alignedDivisors(model.heads).map(String.init).joined(separator: ", ")))")
        }
        if layout.sequenceParallel && !ReductionTree(leaves: sequence).isAligned(parts: layout.tp) {
            let fits = (1...sequence).reversed().first { ReductionTree(leaves: $0).isAligned(parts: layout.tp) } ?? layout.tp
            throw Unsupported.layout("--deterministic with --sequence-parallel sums each LayerNorm gradient over a sequence's positions in a pairwise tree, "
                + "and --tp \(layout.tp) shares of \(sequence) positions are not nodes of it: use --seq \(fits) (or a power of two times --tp)")
        }
    }

    /// The tensor-parallel degrees the head tree supports for `heads` heads.
    static func alignedDivisors(_ heads: Int) -> [Int] {
        (1...heads).filter { ReductionTree(leaves: heads).isAligned(parts: $0) }
    }
}
