import ArgumentParser
import Training
import Workload

/// Options shared by `fleet train` and `fleet bench train`. Numbers are read even when they
/// start with a minus (`--steps -5`), so their range check, not "missing value", answers.
struct TrainOptions: ParsableArguments {
    @Argument(help: "Model to train: \(ModelCatalog.trainable.map(\.name).joined(separator: ", ")).")
    var model: ModelSpec = ModelCatalog.gptTiny

    @Option(parsing: .unconditional, help: "Optimizer steps.")
    var steps: Int = 300

    @Option(parsing: .unconditional, help: "Sequences per step.")
    var batch: Int = 8

    @Option(parsing: .unconditional, help: "Tokens per sequence (default: the model's context).")
    var seq: Int?

    @Option(parsing: .unconditional, help: "Peak learning rate (linear warm-up, then cosine decay to a tenth of it).")
    var lr: Float = 3e-3

    @Option(parsing: .unconditional, help: "Warm-up steps (default 20, at most the run's steps; given, it must be shorter than --steps).")
    var warmup: Int?

    @Option(help: "Seed for initialisation and data order.")
    var seed: UInt64 = 1

    @Option(help: "Text file to train on (bytes); default: fleet's built-in corpus.")
    var data: String?

    @Option(parsing: .unconditional, help: "Threads for OpenBLAS and fleet's kernels.")
    var threads: Int = 1

    @Option(parsing: .unconditional, help: "Validate every N steps (0: only at the end).")
    var evalEvery: Int = 0

    @Option(parsing: .unconditional, help: "Batches in each validation.")
    var evalBatches: Int = 8

    @Flag(help: "Make every parallel layout bitwise identical to the single-process run (fixed summation orders; slower).")
    var deterministic = false

    @Option(parsing: .unconditional, help: "Mixture of experts: each expert takes at most this many times its even share of a sequence's tokens; the rest are dropped (default: no limit).")
    var capacityFactor: Double?

    func configuration() throws -> TrainingConfiguration {
        var c = TrainingConfiguration(model: model)
        if let capacityFactor {
            guard model.moe != nil else {
                throw ValidationError("--capacity-factor limits a mixture of experts' tokens per expert, and \(model.name) has no experts; train gpt-tiny-moe")
            }
            guard capacityFactor > 0, capacityFactor.isFinite else {
                throw ValidationError("--capacity-factor must be a positive number (1.0: each expert takes at most its even share; got \(capacityFactor))")
            }
            c.model.moe?.capacityFactor = capacityFactor
        }
        c.steps = steps
        c.batch = batch
        c.sequence = seq ?? model.context
        c.learningRate = lr
        if let warmup, warmup >= steps, warmup > 0 {
            throw ValidationError("--warmup \(warmup) is not shorter than --steps \(steps): the learning rate would never leave its warm-up; "
                                  + "pass a smaller --warmup (such as \(steps / 10)) or more --steps")
        }
        c.warmupSteps = warmup ?? 20
        c.seed = seed
        c.threads = threads
        c.evalEvery = evalEvery
        c.evalBatches = evalBatches
        c.deterministic = deterministic
        try c.validate()
        return c
    }

    func corpus() throws -> Corpus {
        try data.map(Corpus.file) ?? Corpus.builtIn()
    }
}
