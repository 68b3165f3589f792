import Tensor

/// Expert parallelism's four all-to-alls per MoE block (`ExpertShard`): the dispatched rows to
/// their experts' holders and the outputs back in the forward pass, the outputs' gradients to
/// the holders and the inputs' gradients back in the backward pass. A rank routes its own
/// tokens, so what it sends each holder is a contiguous run of its dispatched rows (the
/// holder's experts, expert by expert, sample by sample); a holder computes each of its experts
/// over every member's rows at once (expert-major) and sends each member its rows back in the
/// order they came, so they land where the combine expects them. Which rows are whose and where
/// they go is fixed by the routing alone: the combine's order, and so the result, does not
/// depend on the group.
extension GPT {
    /// Sends each holder its experts' rows, headed by the sender's first sample and its rows per
    /// (expert, sample); returns what this rank serves, with the rows in `x.servedInput`.
    func sendTokens(_ a: Activations, _ x: ExpertActivations, _ routing: ExpertRouting) throws -> ServedRows {
        let shard = expertShard, c = spec.dModel, share = shard.held.count, members = shard.size, batch = a.batch
        let header = 1 + share * batch, most = a.batch * a.sequence * spec.moe!.topK
        let send = shard.staging.floats(0, members * header + routing.starts[routing.starts.count - 1] * c)
        var counts: [Int] = [], at = 0
        for q in 0..<members {
            let held = (q * share)..<((q + 1) * share)
            send[at] = Float(a.firstSample)
            for (k, e) in held.enumerated() {
                for (s, rows) in routing.sampleRanges(expert: e, samples: batch).enumerated() { send[at + 1 + k * batch + s] = Float(rows.count) }
            }
            let rows = routing.starts[held.lowerBound]..<routing.starts[held.upperBound]
            (send + at + header).update(from: x.input.pointer + rows.lowerBound * c, count: rows.count * c)
            counts.append(header + rows.count * c)
            at += counts[q]
        }
        let capacity = members * (header + most * c), receive = shard.staging.floats(1, capacity)
        let received = try shard.exchange(send, counts: counts, into: receive, capacity: capacity)
        var first: [Int] = [], perMember: [[[Int]]] = [], offsets: [Int] = []
        at = 0
        for p in 0..<members {
            first.append(Int(receive[at]))
            perMember.append((0..<share).map { k in (0..<batch).map { Int(receive[at + 1 + k * batch + $0]) } })
            offsets.append(at + header)
            at += received[p]
        }
        let served = ServedRows(counts: perMember, firstSample: first)
        served.permute(receive, into: x.servedInput.pointer, width: c, toExpertMajor: true, memberOffsets: offsets)
        return served
    }

    /// Sends each member its rows' outputs back; they land in `x.output` in dispatch order.
    func returnOutputs(_ x: ExpertActivations, _ routing: ExpertRouting) throws {
        try returnRows(x.served!, from: x.servedOutput.pointer, into: x.output.pointer, routing: routing)
    }

    /// Sends each holder the gradients of its experts' outputs for this rank's rows.
    func sendOutputGradients(_ x: ExpertActivations, _ d: ExpertActivations.Scratch, _ routing: ExpertRouting) throws {
        let shard = expertShard, c = spec.dModel, share = shard.held.count, served = x.served!
        let counts = (0..<shard.size).map { q in (routing.starts[(q + 1) * share] - routing.starts[q * share]) * c }
        let receive = shard.staging.floats(1, served.total * c)
        try shard.exchange(d.dOutput.pointer, counts: counts, into: receive, capacity: served.total * c)
        served.permute(receive, into: d.servedDOutput.pointer, width: c, toExpertMajor: true)
    }

    /// Sends each member the gradients of its rows' inputs; they land in `d.dInput` in dispatch order.
    func returnInputGradients(_ x: ExpertActivations, _ d: ExpertActivations.Scratch, _ routing: ExpertRouting) throws {
        try returnRows(x.served!, from: d.servedDInput.pointer, into: d.dInput.pointer, routing: routing)
    }

    private func returnRows(_ served: ServedRows, from expertMajor: UnsafePointer<Float>, into dispatched: UnsafeMutablePointer<Float>,
                            routing: ExpertRouting) throws {
        let shard = expertShard, c = spec.dModel
        let send = shard.staging.floats(0, served.total * c)
        served.permute(expertMajor, into: send, width: c, toExpertMajor: false)
        try shard.exchange(send, counts: (0..<served.members).map { served.rows(member: $0) * c }, into: dispatched,
                           capacity: routing.starts[routing.starts.count - 1] * c)
    }
}

/// Deterministic mode under expert parallelism: one MoE block's held experts' parameter
/// gradients from one micro-batch, formed apart for each member's samples — each the partial
/// sum over that member's micro-batch, a node of the batch tree — and handed to the trainer,
/// which sums the nodes in tree order.
struct ExpertGradientNodes {
    let layer: Int
    /// The flat range of the block's held experts' parameters (contiguous: consecutive experts).
    let range: Range<Int>
    let nodes: [Range<Int>]
    let buffers: [FloatBuffer]
    private let layout: ParameterLayout

    init(model: GPT, layer: Int, served: ServedRows, batch: Int) {
        let held = model.expertShard.held, layout = model.layout
        let low = layout.entry("h\(layer).moe.e\(held.lowerBound).fc.w").offset
        let last = layout.entry("h\(layer).moe.e\(held.upperBound - 1).proj.b")
        self.layer = layer
        self.layout = layout
        range = low..<(last.offset + last.count)
        nodes = served.firstSample.map { $0..<($0 + batch) }
        buffers = nodes.map { _ in FloatBuffer(count: last.offset + last.count - low) }
    }

    /// Where member `member`'s part of parameter `name`'s weight and bias gradients goes.
    func destination(_ name: String, member: Int) -> (weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>) {
        let base = buffers[member].pointer - range.lowerBound
        return (base + layout.entry(name + ".w").offset, base + layout.entry(name + ".b").offset)
    }

    func hand(to sink: ((_ layer: Int, _ node: Range<Int>, _ packed: FloatBuffer) -> Void)?) {
        for (node, buffer) in zip(nodes, buffers) { sink?(layer, node, buffer) }
    }
}
