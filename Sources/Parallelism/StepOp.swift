import Workload

/// One matrix product `C[m,n] = op(A)[m,k] · op(B)[k,n]` as the trainer issues it (row-major).
public struct GEMMShape: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transA = false, transB = false
    /// One routed expert's product: its token count (m, or k for a weight gradient) is the
    /// balanced load in a plan; a run's depends on the routing.
    public var routed = false

    public init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, routed: Bool = false) {
        self.m = m; self.n = n; self.k = k; self.transA = transA; self.transB = transB; self.routed = routed
    }

    public var flops: FLOPs { FLOPs(2 * Double(m) * Double(n) * Double(k)) }
    public var description: String { "\(m)×\(n)×\(k)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "")\(routed ? " routed" : "")" }
    public static func < (a: GEMMShape, b: GEMMShape) -> Bool {
        (a.m, a.n, a.k, a.transA ? 1 : 0, a.transB ? 1 : 0) < (b.m, b.n, b.k, b.transA ? 1 : 0, b.transB ? 1 : 0)
    }
}

/// The kernels other than the layers' matrix products, each costed per element of the tensor it walks.
public enum ElementKernel: String, Sendable, Hashable, Codable, CaseIterable {
    case embeddingForward = "embedding_forward", embeddingBackward = "embedding_backward"
    case layerNormForward = "layernorm_forward", layerNormBackward = "layernorm_backward"
    /// Per score element (batch · heads · t · t), the masked half included; its own small
    /// per-head products belong to it.
    case attentionForward = "attention_forward", attentionBackward = "attention_backward"
    case geluForward = "gelu_forward", geluBackward = "gelu_backward"
    /// Residual additions and bias gradients (one read-modify-write per element).
    case residual
    /// Softmax, loss and logit gradient together, per logit.
    case crossEntropy = "cross_entropy"
    /// Per parameter a rank updates: gradient zeroing, norm, clipping and AdamW.
    case optimizer
    /// Mixture of experts, per router logit (rows × experts): softmax, top-k, gates, capacity
    /// and the load-balancing loss; backward, the logits' gradient.
    case expertRoute = "moe_route", expertRouteBackward = "moe_route_backward"
    /// Per element of the rows × top-k slots (× d_model): copying each token to its experts' inputs
    /// (and, backward, adding their input gradients back).
    case expertDispatch = "moe_dispatch"
    /// Per element of the slots: the gate-weighted sum of the experts' outputs; backward, the
    /// gates' gradients and the outputs' gradients.
    case expertCombine = "moe_combine", expertCombineBackward = "moe_combine_backward"
}

/// The communicator a collective runs over.
public enum StepGroup: String, Sendable, Hashable, Codable, CaseIterable {
    /// The tensor-parallel group (the f and g operators' all-reduces).
    case tensor
    /// The data-parallel group (gradient buckets, ZeRO, the loss).
    case data
    /// The first and last stage of a pipeline (the tied embedding's two gradients).
    case embedding
    /// Every rank of one model replica (the global gradient norm).
    case replica
    /// The expert-parallel group (a mixture of experts' token all-to-alls).
    case expert
    /// The ranks holding the same experts, one per expert-parallel group (their gradient buckets).
    case expertData = "expert_data"
    /// The context-parallel group (ring attention's K/V blocks and their gradients).
    case context
}

/// A collective operation's kind, by the names plans, traces and recordings share.
public enum CollectiveKind: String, Sendable, Hashable, Codable {
    case allReduce = "allreduce", reduceScatter = "reduce_scatter", allGather = "all_gather", allToAll = "alltoall"
}

/// One operation of a training step on one rank: what the trainer runs, the simulator
/// prices, `fleet plan --json` prints and `--trace` records, all under the same names.
public enum StepOp: Sendable, Hashable, CustomStringConvertible {
    case matmul(GEMMShape)
    /// A kernel over `elements` (its matrix-product FLOPs, if any, in `flops`).
    case kernel(ElementKernel, elements: Int, flops: FLOPs)
    /// `bytes`: the buffer this rank hands in (for an all-gather, its own block).
    case collective(CollectiveKind, group: StepGroup, bytes: Bytes)
    case send(PipelineMessage, bytes: Bytes)
    case receive(PipelineMessage, bytes: Bytes)
    /// The update of `parameters` elements (AdamW; this rank's share).
    case optimizer(parameters: Int)

    /// `matmul`, a kernel's name, a collective's kind, `send`, `recv` or `optimizer`.
    public var kind: String {
        switch self {
        case .matmul: return "matmul"
        case let .kernel(kernel, _, _): return kernel.rawValue
        case let .collective(kind, _, _): return kind.rawValue
        case .send: return "send"
        case .receive: return "recv"
        case .optimizer: return "optimizer"
        }
    }

    /// Floating-point operations of its matrix products (0 for communication).
    public var flops: FLOPs {
        switch self {
        case let .matmul(shape): return shape.flops
        case let .kernel(_, _, flops): return flops
        default: return .zero
        }
    }

    /// Bytes it moves (0 for compute).
    public var bytes: Bytes {
        switch self {
        case let .collective(_, _, bytes), let .send(_, bytes), let .receive(_, bytes): return bytes
        default: return .zero
        }
    }

    public var description: String {
        switch self {
        case let .matmul(shape): return "matmul \(shape)"
        case let .kernel(kernel, elements, _): return "\(kernel.rawValue) ×\(elements)"
        case let .collective(kind, group, bytes): return "\(kind.rawValue) \(group.rawValue) \(bytes)"
        case let .send(message, bytes): return "send \(message) \(bytes)"
        case let .receive(message, bytes): return "recv \(message) \(bytes)"
        case let .optimizer(parameters): return "optimizer \(parameters)"
        }
    }
}

extension StepOp {
    /// Its fields as JSON values, under the names `fleet plan --json` and `--trace` share:
    /// `kind`; `m`, `n`, `k`, `trans_a`, `trans_b`, `flops` for a product; `elements` (and
    /// `flops`) for a kernel; `group` and `bytes` for communication (a message also its `tag`,
    /// `microbatch`, `from` and `to` stage); `parameters` for the optimizer.
    public var fields: [String: Any] {
        var fields: [String: Any] = ["kind": kind]
        switch self {
        case let .matmul(g):
            fields.merge(["m": g.m, "n": g.n, "k": g.k, "trans_a": g.transA, "trans_b": g.transB, "flops": g.flops.count]) { $1 }
            if g.routed { fields["routed"] = true }
        case let .kernel(_, elements, flops):
            fields["elements"] = elements
            if flops > .zero { fields["flops"] = flops.count }
        case let .collective(_, group, bytes):
            fields.merge(["group": group.rawValue, "bytes": bytes.count]) { $1 }
        case let .send(message, bytes), let .receive(message, bytes):
            fields.merge(["group": "pipeline", "bytes": bytes.count, "microbatch": message.microbatch, "from": message.from, "to": message.to,
                          "payload": message.payload == .activation ? "activations" : "gradients"]) { $1 }
        case let .optimizer(parameters):
            fields["parameters"] = parameters
        }
        return fields
    }
}

extension StepProgram.Phase: CustomStringConvertible {
    /// `forward 0`, `backward 3`, `forward 2.1` (chunk 1, interleaved), `send activations 1`,
    /// `gradient sync`, `optimizer`, `loss`.
    public var description: String {
        switch self {
        case let .schedule(action):
            switch action {
            case let .forward(m, c): return c == 0 ? "forward \(m)" : "forward \(m).\(c)"
            case let .backward(m, c): return c == 0 ? "backward \(m)" : "backward \(m).\(c)"
            case .sendActivation(let m, _): return "send activations \(m)"
            case .receiveActivation(let m, _): return "receive activations \(m)"
            case .sendGradient(let m, _): return "send gradients \(m)"
            case .receiveGradient(let m, _): return "receive gradients \(m)"
            case .optimizerStep: return "optimizer"
            }
        case .gradientSync: return "gradient sync"
        case .optimizer: return "optimizer"
        case .loss: return "loss"
        case .routing: return "routing"
        }
    }
}
