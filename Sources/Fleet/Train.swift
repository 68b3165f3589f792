import ArgumentParser
import Foundation
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a GPT for real (one process for now).",
        discussion: """
        Examples:
          fleet train gpt-tiny
          fleet train gpt-tiny --steps 500 --data ../shared/data/tinyshakespeare.txt --save tiny.weights
          fleet train gpt-tiny --json
        """)

    @OptionGroup var options: TrainOptions

    @Flag(help: "Print one JSON object per step and a final summary object.")
    var json = false

    @Option(help: "Print a progress line every N steps (human output).")
    var logEvery: Int = 10

    @Option(help: "Save the trained weights here (read by fleet generate).")
    var save: String?

    func validate() throws {
        guard logEvery > 0 else { throw ValidationError("--log-every must be positive") }
    }

    func run() throws {
        try Console.reportingErrors {
            let configuration = try options.configuration()
            let trainer = try Trainer(configuration: configuration, corpus: try options.corpus())
            let spec = configuration.model
            if !json {
                Console.out("fleet train \(spec.name): \(spec.parameterCount.formatted()) parameters, batch \(configuration.batch) × \(configuration.sequence) tokens, "
                    + "\(configuration.steps) steps, \(configuration.threads) thread(s), data: \(trainer.data.train.count.formatted()) train / \(trainer.data.validation.count.formatted()) validation bytes")
            }
            let summary = trainer.run { m in
                if json {
                    var fields: KeyValuePairs<String, Any> = ["step": m.step + 1, "loss": Double(m.loss), "lr": Double(m.learningRate),
                                                              "grad_norm": Double(m.gradientNorm), "tokens_per_s": m.tokensPerSecond,
                                                              "step_ms": m.seconds * 1000]
                    if let v = m.validationLoss {
                        fields = ["step": m.step + 1, "loss": Double(m.loss), "lr": Double(m.learningRate), "grad_norm": Double(m.gradientNorm),
                                  "tokens_per_s": m.tokensPerSecond, "step_ms": m.seconds * 1000, "val_loss": Double(v)]
                    }
                    Console.json(fields)
                } else if (m.step + 1) % logEvery == 0 || m.step == 0 || m.step + 1 == configuration.steps || m.validationLoss != nil {
                    var line = String(format: "step %5d/%d  loss %.4f  lr %.2e  %7.1f ms/step  %8.0f tok/s",
                                      m.step + 1, configuration.steps, m.loss, m.learningRate, m.seconds * 1000, m.tokensPerSecond)
                    if let v = m.validationLoss { line += String(format: "  val %.4f", v) }
                    Console.out(line)
                }
            }
            if let save { try WeightsFile.save(trainer.model, step: configuration.steps, to: save) }
            if json {
                Console.json(["final_loss": Double(summary.finalLoss), "val_loss": Double(summary.validationLoss),
                              "tokens_per_s": summary.tokensPerSecond, "achieved_gflops": summary.achievedFLOPs / 1e9,
                              "sgemm_gflops": summary.gemmFLOPs / 1e9, "mfu": summary.mfu])
            } else {
                Console.out(String(format: "done: final loss %.4f, validation loss %.4f, %.0f tokens/s, %.1f GFLOP/s achieved, sgemm %.1f GFLOP/s, MFU %.1f%%",
                                   summary.finalLoss, summary.validationLoss, summary.tokensPerSecond, summary.achievedFLOPs / 1e9,
                                   summary.gemmFLOPs / 1e9, summary.mfu * 100))
                if let save { Console.out("weights saved to \(save) (try: fleet generate --weights \(save))") }
            }
        }
    }
}
