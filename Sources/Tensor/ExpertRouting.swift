import Foundation

/// Top-k routing of rows (tokens) over experts, as Mixtral routes: each row's `topK` largest
/// router logits choose its experts (ties to the lower index), its gates are the softmax of
/// those logits, and the softmax over all experts feeds the load-balancing loss. With a
/// capacity, each expert keeps at most `capacity` assignments of each sequence, first
/// choices before second ones and earlier tokens before later (GShard's priority); the
/// rest are dropped and add nothing to the row's output.
///
/// Everything here is per row or per sequence, so any split of the batch over ranks routes,
/// drops and balances the same tokens.
public struct ExpertRouting {
    public let rows: Int, experts: Int, topK: Int, sequence: Int
    /// Softmax over all experts, `rows × experts`.
    public private(set) var probabilities: [Float]
    /// Each row's chosen experts, best first (`rows × topK`).
    public private(set) var chosen: [Int]
    /// Gates of the chosen experts (softmax over their logits), `rows × topK`.
    public private(set) var gates: [Float]
    /// Where slot `row·topK + j` sits among the experts' inputs, or -1 when dropped.
    public private(set) var position: [Int]
    /// The experts' inputs, expert by expert in row order: `starts[e]..<starts[e+1]` are expert
    /// e's, each naming its row (`rowOf`).
    public private(set) var starts: [Int]
    public private(set) var rowOf: [Int]
    /// Assignments each expert was chosen for (before dropping), and how many were dropped.
    public private(set) var chosenCounts: [Int]
    public private(set) var dropped: Int
    /// The load-balancing loss of each sequence, Σₑ E · fₑ · Pₑ (fₑ: the share of its top-k
    /// choices that went to e; Pₑ: the mean probability of e).
    public private(set) var balanceLoss: [Float]
    /// fₑ of each sequence (`sequences × experts`), kept for the loss's gradient.
    private var shares: [Float]

    /// Routes `rows` rows of `logits` (`rows × experts`) in sequences of `sequence` rows.
    public init(logits: UnsafePointer<Float>, rows: Int, experts: Int, topK: Int, sequence: Int, capacity: Int) {
        precondition(topK <= experts && rows % sequence == 0)
        self.rows = rows; self.experts = experts; self.topK = topK; self.sequence = sequence
        probabilities = [Float](repeating: 0, count: rows * experts)
        chosen = [Int](repeating: 0, count: rows * topK)
        gates = [Float](repeating: 0, count: rows * topK)
        position = [Int](repeating: -1, count: rows * topK)
        chosenCounts = [Int](repeating: 0, count: experts)
        let sequences = rows / sequence
        shares = [Float](repeating: 0, count: sequences * experts)
        balanceLoss = [Float](repeating: 0, count: sequences)
        for r in 0..<rows {
            let row = logits + r * experts
            let top = Reductions.maximum(row, count: experts)
            var sum: Float = 0
            for e in 0..<experts { let p = exp(row[e] - top); probabilities[r * experts + e] = p; sum += p }
            for e in 0..<experts { probabilities[r * experts + e] /= sum }
            // Selection: the k largest logits, ties to the lower index.
            var picked: [Int] = []
            for _ in 0..<topK {
                var best = -1
                for e in 0..<experts where !picked.contains(e) && (best < 0 || row[e] > row[best]) { best = e }
                picked.append(best)
            }
            let bestLogit = row[picked[0]]
            var gateSum: Float = 0
            for (j, e) in picked.enumerated() {
                chosen[r * topK + j] = e
                gates[r * topK + j] = exp(row[e] - bestLogit)
                gateSum += gates[r * topK + j]
            }
            for j in 0..<topK { gates[r * topK + j] /= gateSum }
        }
        // Capacity per sequence: first choices first, then in token order.
        var kept = [Bool](repeating: false, count: rows * topK)
        var perExpert = [[Int]](repeating: [], count: experts)
        dropped = 0
        for s in 0..<sequences {
            var load = [Int](repeating: 0, count: experts)
            for j in 0..<topK {
                for r in (s * sequence)..<((s + 1) * sequence) {
                    let e = chosen[r * topK + j]
                    chosenCounts[e] += 1
                    shares[s * experts + e] += 1 / Float(sequence * topK)
                    if load[e] < capacity { load[e] += 1; kept[r * topK + j] = true } else { dropped += 1 }
                }
            }
            var loss: Float = 0
            for e in 0..<experts {
                var mean: Float = 0
                for r in (s * sequence)..<((s + 1) * sequence) { mean += probabilities[r * experts + e] }
                loss += Float(experts) * shares[s * experts + e] * mean / Float(sequence)
            }
            balanceLoss[s] = loss
        }
        for r in 0..<rows { for j in 0..<topK where kept[r * topK + j] { perExpert[chosen[r * topK + j]].append(r * topK + j) } }
        starts = [0]
        rowOf = []
        for e in 0..<experts {
            for slot in perExpert[e] { position[slot] = rowOf.count; rowOf.append(slot / topK) }
            starts.append(rowOf.count)
        }
    }

    /// Assignments kept (rows of the experts' inputs).
    public var assignments: Int { rowOf.count }

    /// Copies each assignment's row of `inp` (`width` wide) into `out`, expert by expert.
    public func dispatch(_ inp: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int) {
        rowOf.withUnsafeBufferPointer { rowOf in
            Parallel.forEach(rowOf.count, minimumPerThread: 64) { range in
                for i in range { (out + i * width).update(from: inp + rowOf[i] * width, count: width) }
            }
        }
    }

    /// `out[r] = Σⱼ gate(r, j) · expertOut[position(r, j)]`, over the row's kept slots best first.
    public func combine(_ expertOut: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int) {
        position.withUnsafeBufferPointer { position in gates.withUnsafeBufferPointer { gates in
            Parallel.forEach(rows, minimumPerThread: 16) { range in
                for r in range {
                    let o = out + r * width
                    o.update(repeating: 0, count: width)
                    for j in 0..<topK where position[r * topK + j] >= 0 {
                        let g = gates[r * topK + j], y = expertOut + position[r * topK + j] * width
                        for i in 0..<width { o[i] += g * y[i] }
                    }
                }
            }
        } }
    }

    /// Backward of `combine`: each kept slot's expert-output gradient `gate · dout[r]` into
    /// `dExpertOut`; returns d(loss)/d(gate) per slot (0 for dropped ones).
    public func combineBackward(_ dout: UnsafePointer<Float>, expertOut: UnsafePointer<Float>,
                                dExpertOut: UnsafeMutablePointer<Float>, width: Int) -> [Float] {
        var dGates = [Float](repeating: 0, count: rows * topK)
        position.withUnsafeBufferPointer { position in gates.withUnsafeBufferPointer { gates in dGates.withUnsafeMutableBufferPointer { dGates in
            let dg = dGates.baseAddress!
            Parallel.forEach(rows, minimumPerThread: 16) { range in
                for r in range {
                    for j in 0..<topK where position[r * topK + j] >= 0 {
                        let slot = r * topK + j, at = position[slot] * width, g = gates[slot]
                        dg[slot] = Reductions.dot(dout + r * width, expertOut + at, count: width)
                        for i in 0..<width { dExpertOut[at + i] = g * dout[r * width + i] }
                    }
                }
            }
        } } }
        return dGates
    }

    /// Backward of `dispatch`: `dinp[r] += dExpertIn[position(r, j)]` over the row's kept slots, best first.
    public func dispatchBackward(_ dExpertIn: UnsafePointer<Float>, into dinp: UnsafeMutablePointer<Float>, width: Int) {
        position.withUnsafeBufferPointer { position in
            Parallel.forEach(rows, minimumPerThread: 16) { range in
                for r in range {
                    for j in 0..<topK where position[r * topK + j] >= 0 {
                        Elementwise.accumulateRow(dinp + r * width, dExpertIn + position[r * topK + j] * width, count: width)
                    }
                }
            }
        }
    }

    /// d(loss)/d(logits) (`rows × experts`, overwritten) from the gates' gradients and the
    /// load-balancing loss, weighted `balanceScale` per sequence (its weight over the global batch's sequences).
    public func logitGradients(dGates: [Float], balanceScale: Float, into dlogits: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let d = dlogits + r * experts, s = r / sequence
            // Load balance: d/dpₑ = scale · E · fₑ / T, through the softmax over all experts.
            var weighted: Float = 0
            for e in 0..<experts {
                let dp = balanceScale * Float(experts) * shares[s * experts + e] / Float(sequence)
                d[e] = dp
                weighted += dp * probabilities[r * experts + e]
            }
            for e in 0..<experts { d[e] = probabilities[r * experts + e] * (d[e] - weighted) }
            // Gates: softmax over the chosen logits.
            var gated: Float = 0
            for j in 0..<topK { gated += gates[r * topK + j] * dGates[r * topK + j] }
            for j in 0..<topK { d[chosen[r * topK + j]] += gates[r * topK + j] * (dGates[r * topK + j] - gated) }
        }
    }

    /// Rows of the experts' inputs that come from each of `samples` sequences, expert `e`'s
    /// (positions relative to its first input); sequences' rows are contiguous since inputs are in row order.
    public func sampleRanges(expert e: Int, samples: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = [], i = starts[e]
        for s in 0..<samples {
            let begin = i
            while i < starts[e + 1] && rowOf[i] / sequence == s { i += 1 }
            ranges.append((begin - starts[e])..<(i - starts[e]))
        }
        return ranges
    }
}
