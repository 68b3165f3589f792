import Parallelism
import Workload
import XCTest

/// The per-rank step programs against counts made by hand.
final class StepProgramTests: XCTestCase {
    let tiny = ModelCatalog.gptTiny

    func program(_ layout: ParallelLayout, rank: Int, batch: Int = 8, bucketBytes: Int = 1 << 20, model: ModelSpec? = nil) -> StepProgram {
        StepProgram(plan: ShardPlan(model: model ?? tiny, layout: layout), rank: rank,
                    options: StepOptions(batch: batch, sequence: (model ?? tiny).context, bucketBytes: bucketBytes))
    }

    func count(_ ops: [StepOp], _ match: (StepOp) -> Bool) -> Int { ops.filter(match).count }

    func testTensorParallelSumsTwicePerLayerEachWay() {
        let p = program(ParallelLayout(tp: 2), rank: 1)
        let (forward, backward) = p.microbatchWork
        let isTensor: (StepOp) -> Bool = { if case .collective(.allReduce, .tensor, _) = $0 { return true } else { return false } }
        XCTAssertEqual(count(forward, isTensor), 2 * tiny.layers, "g after attention and after the MLP")
        XCTAssertEqual(count(backward, isTensor), 2 * tiny.layers, "f before each column-parallel layer's input")
        XCTAssertEqual(count(program(ParallelLayout(), rank: 0).ops, isTensor), 0)
        // Each carries one activation: 8 sequences × context × d_model floats.
        XCTAssertEqual(forward.first(where: isTensor)?.bytes, 8 * tiny.context * tiny.dModel * 4)
    }

    func testFLOPsPerRankAreTheModelsOverTheLayout() {
        // Whole model on one rank: three times the forward matrix FLOPs per token.
        let tokens = Double(8 * tiny.context)
        let whole = program(ParallelLayout(), rank: 0).ops.reduce(FLOPs.zero) { $0 + $1.flops }.count
        XCTAssertEqual(whole, tiny.trainingFLOPsPerToken * tokens, accuracy: 1e-6 * whole)
        // tp2: the layers split in half, the replicated head not.
        let head = 3 * tiny.headForwardFLOPsPerToken * tokens
        let half = program(ParallelLayout(tp: 2), rank: 0).ops.reduce(FLOPs.zero) { $0 + $1.flops }.count
        XCTAssertEqual(half, (whole - head) / 2 + head, accuracy: 1e-6 * whole)
    }

    func testMixtureOfExpertsPlanHasTheModelsFLOPsAndMarksTheExperts() {
        let moe = ModelCatalog.gptTinyMoE, tokens = Double(8 * moe.context)
        let ops = StepProgram(plan: ShardPlan(model: moe, layout: ParallelLayout()), rank: 0, options: StepOptions(batch: 8, sequence: moe.context)).ops
        let flops = ops.reduce(FLOPs.zero) { $0 + $1.flops }.count
        XCTAssertEqual(flops, moe.trainingFLOPsPerToken * tokens, accuracy: 1e-6 * flops)
        // Each block: every expert's two products forward and four backward, at the balanced load 8·128·2/8.
        let routed = ops.compactMap { op -> GEMMShape? in if case let .matmul(g) = op, g.routed { return g } else { return nil } }
        XCTAssertEqual(routed.count, 2 * 8 * 6)
        XCTAssertTrue(routed.allSatisfy { ($0.transA ? $0.k : $0.m) == 256 })
        // A capacity below the balanced load caps it: ⌈0.5 · 128 · 2 / 8⌉ = 16 a sequence.
        var capped = moe
        capped.moe?.capacityFactor = 0.5
        let cappedOps = StepProgram(plan: ShardPlan(model: capped, layout: ParallelLayout()), rank: 0, options: StepOptions(batch: 8, sequence: 128)).ops
        XCTAssertTrue(cappedOps.contains { if case let .matmul(g) = $0 { return g.routed && g.m == 8 * 16 } else { return false } })
    }

    func testBucketsCoverWhatTheRankHoldsOnceFromTheTopDown() {
        for layout in [ParallelLayout(dp: 2), ParallelLayout(dp: 2, tp: 2), ParallelLayout(dp: 2, tp: 2, pp: 2), ParallelLayout(dp: 2, pp: 2)] {
            let plan = ShardPlan(model: tiny, layout: layout)
            for rank in 0..<layout.worldSize {
                let p = StepProgram(plan: plan, rank: rank, options: StepOptions(batch: 8, sequence: tiny.context, bucketBytes: 4096))
                var covered: [Range<Int>] = []
                for bucket in p.sync.buckets {
                    covered += p.sync.bufferRanges(segment: bucket.segment, packed: bucket.held, tensorRank: p.coordinates.tp)
                }
                let elements = covered.reduce(0) { $0 + $1.count }
                XCTAssertEqual(elements, plan.heldElements(stage: p.stage), "\(layout) rank \(rank)")
                var expected: [Range<Int>] = []
                for (index, entry) in plan.entries.enumerated() where entry.stages.contains(p.stage) {
                    expected += plan.ranges(of: entry, tensorRank: p.coordinates.tp).map { ($0.lowerBound + plan.offsets[index])..<($0.upperBound + plan.offsets[index]) }
                }
                let flat = { (ranges: [Range<Int>]) in Set(ranges.flatMap { Array($0) }) }
                XCTAssertEqual(flat(covered), flat(expected), "\(layout) rank \(rank): exactly the held elements")
                let tops = p.sync.buckets.map { p.sync.bufferRanges(segment: $0.segment, packed: $0.held, tensorRank: p.coordinates.tp).last!.upperBound }
                XCTAssertEqual(tops, tops.sorted(by: >), "top of the buffer first")
                // Every bucket appears once in the program, as an all-reduce of its bytes.
                let buckets = p.ops.filter { if case .collective(.allReduce, .data, let b) = $0 { return b > 4 } else { return false } }
                XCTAssertEqual(buckets.map(\.bytes), p.sync.buckets.map { Bytes(elements: $0.held.count, of: 4) })
            }
        }
    }

    func testBucketsStartInsideTheLastBackwardOnly() {
        let p = program(ParallelLayout(dp: 2, pp: 2, microbatches: 2), rank: 2, bucketBytes: 4096)
        var seen: [Int] = []
        for block in p.blocks {
            let buckets = block.ops.filter { if case .collective(.allReduce, .data, let b) = $0 { return b > 4 } else { return false } }
            if !buckets.isEmpty { seen.append(p.blocks.firstIndex(of: block)!) }
        }
        let lastBackward = p.blocks.lastIndex { if case .schedule(.backward) = $0.phase { return true } else { return false } }!
        XCTAssertEqual(seen.first, lastBackward)
        // The last stage's copy of the tied embedding waits for the sum over the two ends.
        let sync = p.blocks.first { $0.phase == .gradientSync }!.ops
        XCTAssertEqual(sync.first, .collective(.allReduce, group: .embedding, bytes: Bytes(elements: tiny.vocabulary * tiny.dModel, of: 4)))
        XCTAssertTrue(p.sync.buckets.last!.afterEmbedding)
    }

    func testZeROUpdatesEachElementOnOneRankOfTheGroup() {
        let layout = ParallelLayout(dp: 2, tp: 2, zeroStage: 1)
        let plan = ShardPlan(model: tiny, layout: layout)
        var updated = 0
        for dp in 0..<2 {
            let p = StepProgram(plan: plan, rank: layout.mesh.rank(dp: dp, tp: 0, pp: 0), options: StepOptions(batch: 8, sequence: tiny.context))
            for op in p.ops { if case let .optimizer(n) = op { updated += n } }
            let kinds = Set(p.ops.map(\.kind))
            XCTAssertTrue(kinds.isSuperset(of: ["reduce_scatter", "all_gather", "optimizer"]))
            XCTAssertFalse(p.ops.contains { if case .collective(.allReduce, .data, let b) = $0 { return b > 4 } else { return false } })
        }
        XCTAssertEqual(updated, plan.heldElements(stage: 0))
    }

    func testPipelineMessagesFollowTheSchedule() {
        for kind in [PipelineSchedule.Kind.oneFOneB, .gpipe] {
            let layout = ParallelLayout(pp: 2, microbatches: 4, schedule: kind)
            let first = program(layout, rank: 0), last = program(layout, rank: 1)
            let sends = first.ops.compactMap { if case let .send(m, _) = $0 { return m } else { return nil } }
            let receives = last.ops.compactMap { if case let .receive(m, _) = $0 { return m } else { return nil } }
            XCTAssertEqual(sends, receives, "\(kind): activations arrive in the order they leave")
            XCTAssertEqual(sends.count, 4)
        }
    }

    func testUntiedHeadIsSyncedAndUpdatedAtEveryDepth() {
        let llama = ModelCatalog.llama8B
        for pp in [1, 2] {
            let layout = ParallelLayout(dp: 2, pp: pp, microbatches: 1)
            let plan = ShardPlan(model: llama, layout: layout)
            var synced = 0, updated = 0
            for stage in 0..<pp {
                let p = StepProgram(plan: plan, rank: layout.mesh.rank(dp: 0, tp: 0, pp: stage),
                                    options: StepOptions(batch: 2, sequence: 128, bytesPerElement: 2, bucketBytes: 1 << 28))
                synced += p.sync.heldElements
                for op in p.ops { if case let .optimizer(n) = op { updated += n } }
            }
            XCTAssertEqual(synced, llama.parameterCount, "pp\(pp)")
            XCTAssertEqual(updated, llama.parameterCount, "pp\(pp)")
        }
    }
}
