import Parallelism
import Tensor

/// Every sum in the model whose order could depend on the layout, in one place. By default
/// they run as single fused products (fastest). In deterministic mode each is formed in the
/// canonical order of `ReductionTree`: parameter gradients per sample, then summed over the
/// micro-batch's samples; products that tensor parallelism splits over attention heads
/// (row-parallel outputs, column-parallel input gradients) per head, then summed over the
/// heads, the shard's node of the tree first and the tensor-parallel group in tree order.
/// Any layout then reproduces the single-process bits.
extension GPT {
    /// The tree over attention heads that tensor-parallel partial sums follow.
    var headTree: ReductionTree { ReductionTree(leaves: spec.heads) }

    /// This shard's node of `headTree`: the heads it computes.
    var headNode: Range<Int> {
        let count = spec.heads / shard.size
        return (shard.index * count)..<((shard.index + 1) * count)
    }

    /// Sums what `leaf(i, buffer)` writes (`count` floats) over leaves `node` of `tree`, in tree
    /// order, into `out`.
    private func treeSum(_ tree: ReductionTree, _ node: Range<Int>, into out: UnsafeMutablePointer<Float>, count: Int,
                         leftFold: Bool = false, _ leaf: (Int, UnsafeMutablePointer<Float>) -> Void) {
        tree.sum(node, into: out, count: count, value: { node, buffer in
            guard node.count == 1 else { return false }
            leaf(node.lowerBound, buffer)
            return true
        }, scratch: { scratch.floats(1 + $0, count) }, add: { Elementwise.accumulate($0, $1, count: $2) }, leftFold: leftFold)
    }

    /// The sum over the micro-batch's `samples` of what `leaf(sample, buffer)` writes; valid until the next call.
    private func sumOverSamples(_ samples: Int, count: Int, _ leaf: (Int, UnsafeMutablePointer<Float>) -> Void) -> UnsafeMutablePointer<Float> {
        let total = scratch.floats(0, count)
        treeSum(ReductionTree(leaves: samples), 0..<samples, into: total, count: count,
                leftFold: reductionOrder == .leftFoldForTesting, leaf)
        return total
    }

    /// `destination[r·ld + c] += values[r·columns + c]`.
    private func add(_ values: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int) {
        guard ld != columns else { return Elementwise.accumulate(destination, values, count: rows * columns) }
        Parallel.forEach(rows, minimumPerThread: 16) { range in
            for r in range { Elementwise.accumulateRow(destination + r * ld, values + r * columns, count: columns) }
        }
    }

    /// `dW += doutᵀ · inp` over a micro-batch of `batch × sequence` rows. Under context
    /// parallelism in deterministic mode the rows first move to a sample split (`ContextShard.toSamples`),
    /// so each sample's gradient is formed over its whole sequence, as one process forms it.
    func weightGradient(_ dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                        batch: Int, sequence: Int, k: Int, n: Int, ldOut: Int? = nil, ldWeight: Int? = nil) throws {
        guard deterministic else {
            return Linear.weightGradient(dweight: dweight, dout: dout, inp: inp, m: batch * sequence, k: k, n: n, accumulate: true,
                                         ldOut: ldOut, ldWeight: ldWeight)
        }
        if context.size > 1, let whole = context.sequence {
            let dy = try context.toSamples(dout, batch: batch, sequence: whole, width: n, ld: ldOut, slot: 2)
            let x = try context.toSamples(inp, batch: batch, sequence: whole, width: k, slot: 3)
            return perSampleWeightGradient(dweight, dout: dy, inp: x, batch: batch / context.size, sequence: whole, k: k, n: n, ldOut: nil,
                                           ldWeight: ldWeight)
        }
        perSampleWeightGradient(dweight, dout: dout, inp: inp, batch: batch, sequence: sequence, k: k, n: n, ldOut: ldOut, ldWeight: ldWeight)
    }

    /// Deterministic mode's weight gradient over rows that hold whole sequences: per sample, summed in tree order.
    private func perSampleWeightGradient(_ dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                         batch: Int, sequence: Int, k: Int, n: Int, ldOut: Int?, ldWeight: Int?) {
        let ldo = ldOut ?? n
        let total = sumOverSamples(batch, count: n * k) { s, out in
            Linear.weightGradient(dweight: out, dout: dout + s * sequence * ldo, inp: inp + s * sequence * k, m: sequence, k: k, n: n,
                                  accumulate: false, ldOut: ldo)
        }
        add(total, into: dweight, rows: n, columns: k, ld: ldWeight ?? k)
    }

    /// `db += Σ_rows dout` (under context parallelism in deterministic mode, by whole sequences as `weightGradient`).
    func biasGradient(_ dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, batch: Int, sequence: Int, n: Int, ldOut: Int? = nil) throws {
        var (dout, batch, sequence, ldo) = (dout, batch, sequence, ldOut ?? n)
        guard deterministic else { return Elementwise.addColumnSums(dbias, dout, rows: batch * sequence, columns: n, stride: ldo) }
        if context.size > 1, let whole = context.sequence {
            dout = UnsafePointer(try context.toSamples(dout, batch: batch, sequence: whole, width: n, ld: ldo, slot: 2))
            (batch, sequence, ldo) = (batch / context.size, whole, n)
        }
        let total = sumOverSamples(batch, count: n) { s, out in
            out.update(repeating: 0, count: n)
            Elementwise.addColumnSums(out, dout + s * sequence * ldo, rows: sequence, columns: n, stride: ldo)
        }
        Elementwise.accumulate(dbias, total, count: n)
    }

    /// A Linear layer's weight and (optional) bias gradients.
    func linearParameterGradients(_ name: String, weightOffset: Int = 0, biasOffset: Int = 0, dout: UnsafePointer<Float>,
                                  inp: UnsafePointer<Float>, batch: Int, sequence: Int, k: Int, n: Int,
                                  ldOut: Int? = nil, ldWeight: Int? = nil) throws {
        try weightGradient(gradient(name + ".w") + weightOffset, dout: dout, inp: inp, batch: batch, sequence: sequence, k: k, n: n,
                           ldOut: ldOut, ldWeight: ldWeight)
        try kernel(.residual, batch * sequence * n) {
            try biasGradient(gradient(name + ".b") + biasOffset, dout: dout, batch: batch, sequence: sequence, n: n, ldOut: ldOut)
        }
    }

    /// LayerNorm `name`'s weight and bias gradients from the rows this rank holds (`dout`, `inp`,
    /// `mean`, `rstd`: `a.batch` sequences of `a.localSequence` positions). Without sequence
    /// parallelism or deterministic mode they are accumulated at once and nil is returned;
    /// otherwise this rank's part is formed and the returned step finishes the sum (outside the
    /// kernel, since it communicates): under sequence parallelism the parts are summed over the
    /// tensor-parallel group. In deterministic mode each sample's gradient is summed over its
    /// positions in the order of a tree over positions (a shard holds a node of it), then the
    /// samples are summed.
    func layerNormGradients(_ name: String, _ a: Activations, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                            mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>) -> (() throws -> Void)? {
        let c = spec.dModel, dweight = gradient(name + ".w"), dbias = gradient(name + ".b")
        let batch = a.batch, n = a.localSequence, sp = shard.sequenceParallel
        func accumulate(_ total: UnsafePointer<Float>) {
            Elementwise.accumulate(dweight, total, count: c)
            Elementwise.accumulate(dbias, total + c, count: c)
        }
        guard deterministic else {
            guard sp else {
                LayerNorm.parameterGradients(dweight: dweight, dbias: dbias, dout: dout, inp: inp, mean: mean, rstd: rstd,
                                             rows: batch * n, columns: c)
                return nil
            }
            let part = scratch.floats(Self.positionSlot, 2 * c)
            part.update(repeating: 0, count: 2 * c)
            LayerNorm.parameterGradients(dweight: part, dbias: part + c, dout: dout, inp: inp, mean: mean, rstd: rstd, rows: batch * n, columns: c)
            return { [self] in
                try shard.reduce(part, count: 2 * c)
                accumulate(part)
            }
        }
        if context.size > 1, let whole = context.sequence {
            // Whole sequences of this rank's samples first (communication: in the returned step).
            return { [self] in
                let dy = try context.toSamples(dout, batch: batch, sequence: whole, width: c, slot: 2)
                let x = try context.toSamples(inp, batch: batch, sequence: whole, width: c, slot: 3)
                let mu = try context.toSamples(mean, batch: batch, sequence: whole, width: 1, slot: 4)
                let sigma = try context.toSamples(rstd, batch: batch, sequence: whole, width: 1, slot: 5)
                let samples = batch / context.size
                let perSample = positionSums(samples: samples, sequence: whole, node: 0..<whole, dout: dy, inp: x, mean: mu, rstd: sigma)
                accumulate(sumOverSamples(samples, count: 2 * c) { s, out in out.update(from: perSample + s * 2 * c, count: 2 * c) })
            }
        }
        let positions = ReductionTree(leaves: a.sequence), node = shard.positions(of: a.sequence)
        let perSample = positionSums(samples: batch, sequence: a.sequence, node: node, dout: dout, inp: inp, mean: mean, rstd: rstd)
        return { [self] in
            if sp { try shard.orderedReduce(perSample, count: batch * 2 * c, tree: positions) }
            accumulate(sumOverSamples(batch, count: 2 * c) { s, out in out.update(from: perSample + s * 2 * c, count: 2 * c) })
        }
    }

    /// Each sample's LayerNorm parameter gradient (weight then bias, `2c` floats) summed over
    /// positions `node` in the order of the tree over a sequence's positions; the rows hold
    /// those positions of each of `samples` samples.
    private func positionSums(samples batch: Int, sequence: Int, node: Range<Int>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        let c = spec.dModel, n = node.count, positions = ReductionTree(leaves: sequence)
        let perSample = scratch.floats(Self.positionSlot, batch * 2 * c)
        for s in 0..<batch {
            positions.sum(node, into: perSample + s * 2 * c, count: 2 * c, value: { leaf, out in
                guard leaf.count == 1 else { return false }
                // One position's part, written directly (thousands a pass: no thread hand-off for each).
                let row = s * n + leaf.lowerBound - node.lowerBound, x = inp + row * c, dy = dout + row * c
                let m = mean[row], r = rstd[row]
                for i in 0..<c {
                    out[i] = (x[i] - m) * r * dy[i]
                    out[c + i] = dy[i]
                }
                return true
            }, scratch: { scratch.floats(Self.positionSlot + 1 + $0, 2 * c) }, add: { Elementwise.accumulate($0, $1, count: $2) })
        }
        return perSample
    }

    /// A routed expert's weight and bias gradients (`name.w`, `name.b`) from its inputs' rows,
    /// which come from the micro-batch's samples in `samples` (row ranges, in sample order), added
    /// to the model's gradients or to `destination`. In deterministic mode each sample's part is
    /// formed apart and the samples summed in tree order, as for every other parameter.
    func expertParameterGradients(_ name: String, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, samples: [Range<Int>], k: Int, n: Int,
                                  into destination: (weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>)? = nil) {
        let rows = samples.last?.upperBound ?? 0
        let dweight = destination?.weight ?? gradient(name + ".w"), dbias = destination?.bias ?? gradient(name + ".b")
        guard deterministic else {
            Linear.weightGradient(dweight: dweight, dout: dout, inp: inp, m: rows, k: k, n: n, accumulate: true)
            return kernel(.residual, rows * n) { Elementwise.addColumnSums(dbias, dout, rows: rows, columns: n) }
        }
        let weights = sumOverSamples(samples.count, count: n * k) { s, out in
            let part = samples[s]
            // A sample that sent this expert nothing adds zeros.
            guard !part.isEmpty else { return out.update(repeating: 0, count: n * k) }
            Linear.weightGradient(dweight: out, dout: dout + part.lowerBound * n, inp: inp + part.lowerBound * k, m: part.count, k: k, n: n,
                                  accumulate: false)
        }
        Elementwise.accumulate(dweight, weights, count: n * k)
        kernel(.residual, rows * n) {
            let biases = sumOverSamples(samples.count, count: n) { s, out in
                out.update(repeating: 0, count: n)
                Elementwise.addColumnSums(out, dout + samples[s].lowerBound * n, rows: samples[s].count, columns: n)
            }
            Elementwise.accumulate(dbias, biases, count: n)
        }
    }

    /// The first scratch slot of the per-position sums (clear of `sumOverSamples`' slots).
    static let positionSlot = 32

    /// The token and position embeddings' gradients from the embedding output's gradient. Under
    /// context parallelism the rows are this rank's positions (`context.chunks`); in deterministic
    /// mode they move to whole sequences of its samples, whose tokens are `sampleTokens`.
    func embeddingGradients(dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, batch: Int, sequence: Int,
                            sampleTokens: UnsafePointer<Int32>) throws {
        let c = spec.dModel
        if context.size > 1, let whole = context.sequence {
            if deterministic {
                let dy = try context.toSamples(dout, batch: batch, sequence: whole, width: c, slot: 2)
                return perSampleEmbeddingGradients(dout: dy, tokens: sampleTokens, batch: batch / context.size, sequence: whole)
            }
            for s in 0..<batch {
                var row = s * sequence
                for chunk in context.chunks(sequence: whole) {
                    Embedding.backward(dwte: gradient("wte"), dwpe: gradient("wpe") + chunk.lowerBound * c, dout: dout + row * c, tokens: tokens + row,
                                       batch: 1, sequence: chunk.count, channels: c)
                    row += chunk.count
                }
            }
            return
        }
        guard deterministic else {
            return Embedding.backward(dwte: gradient("wte"), dwpe: gradient("wpe"), dout: dout, tokens: tokens,
                                      batch: batch, sequence: sequence, channels: c)
        }
        perSampleEmbeddingGradients(dout: dout, tokens: tokens, batch: batch, sequence: sequence)
    }

    /// Deterministic mode's embedding gradients over rows that hold whole sequences.
    private func perSampleEmbeddingGradients(dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>, batch: Int, sequence: Int) {
        let c = spec.dModel
        // The token table and the position table, each summed over the samples on its own.
        for (count, target, isTokens) in [(spec.vocabulary * c, gradient("wte"), true), (spec.context * c, gradient("wpe"), false)] {
            let total = sumOverSamples(batch, count: count) { s, out in
                out.update(repeating: 0, count: count)
                Embedding.backward(dwte: isTokens ? out : nil, dwpe: isTokens ? nil : out, dout: dout + s * sequence * c,
                                   tokens: tokens + s * sequence, batch: 1, sequence: sequence, channels: c)
            }
            Elementwise.accumulate(target, total, count: count)
        }
    }

    /// Where the tied output projection's gradient goes: the embedding's own gradient by
    /// default; in deterministic mode a separate buffer, so the head's and the embedding's
    /// parts are each summed over the batch before they are added (as pipeline stages must).
    var outputProjectionGradient: UnsafeMutablePointer<Float> { tiedHeadGradient?.pointer ?? gradient("wte") }

    /// Sums a split product's partial `sum` (whole sequences × d) over the tensor-parallel group:
    /// all-reduced in place (`sum` is `out`), or under sequence parallelism reduce-scattered to
    /// this shard's positions in `out`; in `tree`'s order when given (deterministic mode).
    private func sumOverTensorGroup(_ a: Activations, _ sum: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                    tree: ReductionTree?) throws {
        let c = spec.dModel, count = a.batch * a.sequence * c
        if shard.sequenceParallel { return try shard.scatterSequence(sum, into: out, batch: a.batch, sequence: a.sequence, width: c, tree: tree) }
        if let tree { try shard.orderedReduce(out, count: count, tree: tree) } else { try shard.reduce(out, count: count) }
    }

    /// Row-parallel `out[rows, c] = inp[rows, local] · W[:, shard's columns]ᵀ`, summed over the
    /// tensor-parallel group (the g operator), then the bias. In deterministic mode the product
    /// is formed per head (`full / heads` columns each) and summed in `headTree` order. Under
    /// sequence parallelism the sum is reduce-scattered: `out` receives this shard's positions.
    func rowParallel(_ a: Activations, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: String, bias: String,
                     local: Int, full: Int) throws {
        let c = spec.dModel, rows = a.batch * a.sequence, sp = shard.sequenceParallel
        let sum = sp ? a.partial.pointer : out
        func reduce(tree: ReductionTree?) throws { try sumOverTensorGroup(a, sum, into: out, tree: tree) }
        if deterministic {
            let width = full / spec.heads, first = headNode.lowerBound
            treeSum(headTree, headNode, into: sum, count: rows * c) { head, buffer in
                Linear.forward(out: buffer, inp: inp + (head - first) * width, weight: pointer(weight) + head * width, bias: nil,
                               m: rows, k: width, n: c, ldInput: local, ldWeight: full)
            }
            try reduce(tree: headTree)
        } else if shard.size == 1 {
            Linear.forward(out: out, inp: inp, weight: pointer(weight), bias: pointer(bias), m: rows, k: full, n: c)
            return
        } else {
            Linear.forward(out: sum, inp: inp, weight: pointer(weight) + shard.index * local, bias: nil,
                           m: rows, k: local, n: c, ldWeight: full)
            try reduce(tree: nil)
        }
        let b = pointer(bias), held = a.batch * a.localSequence
        kernel(.residual, held * c) {
            Parallel.forEach(held, minimumPerThread: 64) { range in
                for row in range { Elementwise.accumulate(out + row * c, b, count: c) }
            }
        }
    }

    /// The input gradient of a column-parallel layer, summed over the tensor-parallel group
    /// (the f operator): `dinp[rows, c] = Σ_sections dout[:, section] · W[section rows, :]`,
    /// where each of `sections` (Q, K, V for attention; one for the MLP) holds this shard's
    /// `width` of `sectionSize` output rows of `weight`, and `dout` rows are `ldOut` apart.
    /// Under sequence parallelism the sum is reduce-scattered: `dinp` receives this shard's positions.
    func columnParallelInputGradient(_ a: Activations, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: String,
                                     sections: Int, sectionSize: Int, width: Int, ldOut: Int) throws {
        let c = spec.dModel, w = pointer(weight), rows = a.batch * a.sequence, sp = shard.sequenceParallel
        let sum = sp ? a.partial.pointer : dinp
        func reduce(tree: ReductionTree?) throws { try sumOverTensorGroup(a, sum, into: dinp, tree: tree) }
        guard deterministic else {
            if shard.size == 1 {
                // One shard's sections are contiguous: a single fused product.
                Linear.inputGradient(dinp: dinp, dout: dout, weight: w, m: rows, k: c, n: sections * width, accumulate: false, ldOut: ldOut)
                return
            }
            for s in 0..<sections {
                Linear.inputGradient(dinp: sum, dout: dout + s * width, weight: w + (s * sectionSize + shard.index * width) * c,
                                     m: rows, k: c, n: width, accumulate: s > 0, ldOut: ldOut)
            }
            return try reduce(tree: nil)
        }
        let perHead = sectionSize / spec.heads, first = headNode.lowerBound
        treeSum(headTree, headNode, into: sum, count: rows * c) { head, buffer in
            for s in 0..<sections {
                Linear.inputGradient(dinp: buffer, dout: dout + s * width + (head - first) * perHead,
                                     weight: w + (s * sectionSize + head * perHead) * c, m: rows, k: c, n: perHead,
                                     accumulate: s > 0, ldOut: ldOut)
            }
        }
        try reduce(tree: headTree)
    }
}
