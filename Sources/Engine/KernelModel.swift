import Workload

/// One matrix product `C[m,n] = op(A)[m,k] · op(B)[k,n]` as the trainer issues it (row-major).
public struct GEMMShape: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var m: Int, n: Int, k: Int
    public var transA = false, transB = false

    public init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
        self.m = m; self.n = n; self.k = k; self.transA = transA; self.transB = transB
    }

    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    public var description: String { "\(m)×\(n)×\(k)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "")" }
    public static func < (a: GEMMShape, b: GEMMShape) -> Bool {
        (a.m, a.n, a.k, a.transA ? 1 : 0, a.transB ? 1 : 0) < (b.m, b.n, b.k, b.transA ? 1 : 0, b.transB ? 1 : 0)
    }
}

/// The non-matmul kernels, each costed per element of the tensor it walks.
public enum ElementKernel: String, Sendable, Hashable, Codable, CaseIterable {
    case embeddingForward = "embedding_forward", embeddingBackward = "embedding_backward"
    case layerNormForward = "layernorm_forward", layerNormBackward = "layernorm_backward"
    /// Per score element (batch · heads · t · t), the masked half included.
    case attentionForward = "attention_forward", attentionBackward = "attention_backward"
    case geluForward = "gelu_forward", geluBackward = "gelu_backward"
    /// Residual additions and bias gradients (one read-modify-write per element).
    case residual
    /// Softmax, loss and logit gradient together, per logit.
    case crossEntropy = "cross_entropy"
    /// Per parameter a rank updates: gradient zeroing, norm, clipping and AdamW.
    case optimizer
}

/// The work of a piece of a step: matrix products by shape, and elements per kernel.
public struct KernelWork: Sendable, Hashable {
    public var gemms: [GEMMShape: Int] = [:]
    public var elements: [ElementKernel: Double] = [:]

    public init() {}

    mutating func gemm(_ shape: GEMMShape, times: Int = 1) { gemms[shape, default: 0] += times }
    mutating func add(_ kernel: ElementKernel, _ count: Double) { elements[kernel, default: 0] += count }

    public var flops: Double { gemms.reduce(0) { $0 + $1.key.flops * Double($1.value) } }

    public static func + (a: KernelWork, b: KernelWork) -> KernelWork {
        var sum = a
        for (shape, count) in b.gemms { sum.gemm(shape, times: count) }
        for (kernel, count) in b.elements { sum.add(kernel, count) }
        return sum
    }
}

/// The kernels fleet's own trainer runs for one micro-batch of one pipeline stage on one
/// tensor-parallel shard (mirroring `GPT+Forward` and `GPT+Backward`): column-parallel QKV
/// and fc, row-parallel projections, LayerNorms, embeddings and the tied head replicated.
/// Calibrated devices price this list kernel by kernel.
public enum KernelModel {
    public static func stage(model: ModelSpec, sequences b: Int, sequence t: Int, layers: Int, embed: Bool, head: Bool,
                             tp: Int) -> (forward: KernelWork, backward: KernelWork) {
        let rows = b * t, c = model.dModel, cl = c / tp, hl = model.mlpHidden / tp, heads = model.heads / tp
        let v = model.vocabulary, r = Double(rows), scores = Double(b * heads * t * t)
        var f = KernelWork(), g = KernelWork()
        // Forward `out = inp · Wᵀ` is m×n×k with Bᵀ; its input gradient `dout · W` is m×k×n;
        // its weight gradient `doutᵀ · inp` is n×k×m with Aᵀ.
        func linear(n: Int, k: Int, times: Int = 1) {
            f.gemm(GEMMShape(m: rows, n: n, k: k, transB: true), times: times)
            g.gemm(GEMMShape(m: rows, n: k, k: n), times: times)
            g.gemm(GEMMShape(m: n, n: k, k: rows, transA: true), times: times)
        }
        if embed {
            f.add(.embeddingForward, r * Double(c))
            g.add(.embeddingBackward, r * Double(c))
        }
        for _ in 0..<layers {
            f.add(.layerNormForward, 2 * r * Double(c))
            g.add(.layerNormBackward, 2 * r * Double(c))
            // Split QKV runs as three sections of the shard's heads; unsplit as one fused product.
            if tp > 1 { linear(n: cl, k: c, times: 3) } else { linear(n: 3 * c, k: c) }
            f.add(.attentionForward, scores)
            g.add(.attentionBackward, scores)
            linear(n: c, k: cl)
            linear(n: hl, k: c)
            f.add(.geluForward, r * Double(hl))
            g.add(.geluBackward, r * Double(hl))
            linear(n: c, k: hl)
            f.add(.residual, 2 * r * Double(c))
            // Bias gradients of the four linears.
            g.add(.residual, r * Double(3 * cl + c + hl + c))
        }
        if head {
            f.add(.layerNormForward, r * Double(c))
            g.add(.layerNormBackward, r * Double(c))
            linear(n: v, k: c)
            f.add(.crossEntropy, r * Double(v))
        }
        return (f, g)
    }
}
