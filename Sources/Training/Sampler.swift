import Tensor

/// Generates text from a model, one byte at a time, with temperature sampling.
public struct Sampler {
    public let model: GPT
    public var temperature: Float = 0.8
    public let rng: CounterRNG

    public init(model: GPT, seed: UInt64, temperature: Float = 0.8) {
        self.model = model
        self.rng = CounterRNG(seed: seed)
        self.temperature = temperature
    }

    /// Continues `prompt` by `count` bytes; calls `emit` with each new byte.
    public func generate(prompt: [UInt8], count: Int, emit: (UInt8) -> Void) {
        var context = prompt.isEmpty ? [UInt8(ascii: "\n")] : prompt
        let stream = CounterRNG.stream("sample")
        for i in 0..<count {
            let window = Array(context.suffix(model.spec.context))
            model.step(tokens: window.map(Int32.init), targets: nil, batch: 1, sequence: window.count, backward: false)
            let logits = model.logits(row: window.count - 1)
            let next = sample(logits, uniform: Float(rng.uniform(stream: stream, index: UInt64(i))))
            context.append(next)
            emit(next)
        }
    }

    private func sample(_ logits: UnsafeBufferPointer<Float>, uniform: Float) -> UInt8 {
        if temperature <= 0 { return UInt8(logits.indices.max { logits[$0] < logits[$1] }!) }
        let maximum = logits.max()!
        let weights = logits.map { FastMath.exp(($0 - maximum) / temperature) }
        var threshold = uniform * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            threshold -= w
            if threshold <= 0 { return UInt8(i) }
        }
        return UInt8(weights.count - 1)
    }
}
