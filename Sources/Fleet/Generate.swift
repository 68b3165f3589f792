import ArgumentParser
import Foundation
import Training
import Workload

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print text sampled from trained weights (fleet train --save) or a fresh model.")

    @Option(help: "Weights file written by fleet train --save; without it, a freshly initialised model.")
    var weights: String?

    @Option(help: "Model for a fresh model (ignored with --weights).")
    var model: ModelSpec = ModelCatalog.gptTiny

    @Option(help: "Text to continue.")
    var prompt: String = "The "

    @Option(help: "Bytes to generate.")
    var tokens: Int = 200

    @Option(help: "Sampling temperature (0: always the most likely byte).")
    var temperature: Float = 0.8

    @Option(help: "Seed for sampling (and for a fresh model's weights).")
    var seed: UInt64 = 1

    func validate() throws {
        guard tokens > 0 else { throw ValidationError("--tokens must be positive") }
        guard temperature >= 0 else { throw ValidationError("--temperature must not be negative") }
    }

    func run() throws {
        try Console.reportingErrors {
            let gpt = try weights.map { try WeightsFile.load($0).model } ?? GPT(spec: model, seed: seed)
            let sampler = Sampler(model: gpt, seed: seed, temperature: temperature)
            var output = Array(prompt.utf8)
            sampler.generate(prompt: output, count: tokens) { output.append($0) }
            Console.outBytes(output)
        }
    }
}
