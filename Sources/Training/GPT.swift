import Parallelism
import Tensor
import Workload

/// A GPT-2-style decoder (pre-LayerNorm, GELU MLP, learned positions, tied embeddings)
/// with hand-written forward and backward passes over flat parameter and gradient buffers.
public final class GPT {
    public let spec: ModelSpec
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    /// Which slice of each split matrix this process computes (the whole model by default).
    public let shard: TensorShard
    private var activations: Activations?
    /// Deterministic mode: every layout-dependent sum in its canonical order (see GPT+Reductions).
    /// The order of per-sample gradient sums (a test hook may change it).
    public var reductionOrder = ExecutionContext.ReductionOrder.tree
    public var deterministic = false {
        didSet { tiedHeadGradient = deterministic ? FloatBuffer(count: layout.entry("wte").count) : nil }
    }
    /// In deterministic mode, the output projection's part of the tied embedding's gradient.
    public private(set) var tiedHeadGradient: FloatBuffer?
    let scratch = ScratchPool()
    /// Where the passes' weights come from under ZeRO-3 (nil: always in place).
    var weights: WeightSource?
    /// Which routed experts this process computes, and whom it trades tokens with (all of them by default).
    public var expertShard: ExpertShard
    /// Which positions of each sequence this process holds, and whom it passes K/V blocks to (all of them by default).
    public var context = ContextShard.whole
    /// Deterministic mode under expert parallelism: takes each member's node of a block's held
    /// experts' gradients (layer, the member's micro-batch's samples, the packed gradients).
    var expertGradientNodes: ((_ layer: Int, _ node: Range<Int>, _ packed: FloatBuffer) -> Void)?

    /// Every process initialises the full parameter buffer from the same keyed streams, so a
    /// tensor-parallel shard starts from exactly the single-process values of its slice.
    public init(spec: ModelSpec, seed: UInt64, shard: TensorShard = .whole) {
        self.spec = spec
        self.shard = shard
        expertShard = .whole(experts: spec.moe?.experts ?? 0)
        layout = ParameterLayout(spec: spec)
        // Page-backed: a rank holding part of the model (a stage, a shard) keeps only that part's pages.
        parameters = FloatBuffer(pageBackedCount: layout.count)
        gradients = FloatBuffer(pageBackedCount: layout.count)
        layout.initialize(parameters, seed: seed)
    }

    func pointer(_ name: String) -> UnsafeMutablePointer<Float> { parameters.pointer + layout.entry(name).offset }
    func gradient(_ name: String) -> UnsafeMutablePointer<Float> { gradients.pointer + layout.entry(name).offset }

    /// Fresh buffers for one micro-batch of `batch` sequences of `sequence` tokens (pipeline stages
    /// keep several alive at once); under context parallelism they hold this rank's positions.
    func makeActivations(batch: Int, sequence: Int) -> Activations {
        let held = context.localSequence(sequence)
        return Activations(spec: spec, batch: batch, sequence: held, local: shard.dimensions(spec),
                           localSequence: shard.positions(of: held).count, expertMembers: expertShard.size,
                           positions: context.positions(sequence: sequence), contextSize: context.size)
    }

    /// The buffers `step` last used.
    var lastActivations: Activations? { activations }

    /// Buffers for a batch shape, reused while the shape stays the same.
    func activations(batch: Int, sequence: Int) -> Activations {
        if let a = activations, a.batch == batch, a.positions.sequence == sequence { return a }
        let a = makeActivations(batch: batch, sequence: sequence)
        activations = a
        return a
    }

    /// Runs the forward pass on `tokens` (`batch × sequence`); with `targets`, returns the mean
    /// cross-entropy, and with `backward` also accumulates parameter gradients.
    @discardableResult
    public func step(tokens: [Int32], targets: [Int32]?, batch: Int, sequence: Int, backward: Bool) -> Float {
        precondition(sequence <= spec.context && tokens.count == batch * sequence)
        let a = activations(batch: batch, sequence: sequence)
        precondition(shard.size == 1, "step() runs a whole model; tensor-parallel shards run through DistributedTrainer")
        tokens.withUnsafeBufferPointer { a.tokens.update(from: $0.baseAddress!, count: tokens.count) }
        // One shard never communicates, so these passes cannot throw.
        try! forward(a)
        guard let targets else { return .nan }
        targets.withUnsafeBufferPointer { a.targets.update(from: $0.baseAddress!, count: targets.count) }
        let loss = CrossEntropy.forwardBackward(logits: a.logits.pointer, targets: a.targets, losses: a.losses.pointer,
                                                rows: batch * sequence, vocabulary: spec.vocabulary, gradient: backward)
        if backward {
            try! self.backward(a)
            if let head = tiedHeadGradient { Elementwise.accumulate(gradient("wte"), head.pointer, count: head.count) }
        }
        return loss
    }

    /// Logits of the last forward pass for row `row` (`batch·sequence` rows of `vocabulary`).
    public func logits(row: Int) -> UnsafeBufferPointer<Float> {
        let a = activations!
        return UnsafeBufferPointer(start: a.logits.pointer + row * spec.vocabulary, count: spec.vocabulary)
    }

    public func zeroGradients() {
        gradients.zero()
        tiedHeadGradient?.zero()
    }

    /// Runs `body` with `units[index]`'s weights in place (ZeRO-3 gathers them, and starts the
    /// next unit's gather, before; and lets them go after).
    func using<T>(_ units: [ParameterUnit], _ index: Int, _ body: () throws -> T) throws -> T {
        guard let weights else { return try body() }
        try weights.use(units[index], then: index + 1 < units.count ? units[index + 1] : nil)
        defer { weights.done(units[index]) }
        return try body()
    }

    /// Zeroes the gradient in `ranges` only (a rank's part; the rest is released and reads as zero).
    func zeroGradients(in ranges: [Range<Int>]) {
        for range in ranges { (gradients.pointer + range.lowerBound).update(repeating: 0, count: range.count) }
        tiedHeadGradient?.zero()
    }
}
