import Engine
import Foundation
import Workflows
import Workload

/// A Llama 3 405B step on 16,384 GPUs: FLOPs, time and utilisation, from the simulator.
struct FleetScale: Exercise {
    let id = "fleet-scale"
    let chapter = "Scale"
    let title = "Llama 3 405B on 16,384 H100: FLOPs per step, step time and MFU"
    let minutes = 35
    let needs = "simulator"
    let background = """
        Training a dense transformer costs about 6 · N FLOPs per token (2N forward, 4N backward) plus attention,
        12 · layers · s · h per token. A step of B sequences of s tokens needs (FLOPs per token) · B · s;
        divided over G GPUs of peak P at model FLOPs utilisation MFU, the step takes
          t = FLOPs per step / (G · P · MFU)
        The simulator prices the same step from the plan: kernels at the device's rate and efficiency,
        tensor-parallel all-reduces on NVLink, pipeline messages and the 1F1B bubble, the data-parallel
        all-reduce overlapped with the backward pass.
        Setup: Llama 3 405B, 2,048 nodes × 8 H100, tp8 · pp16 · dp128, 2,048 sequences of 8,192 tokens,
        16 micro-batches, ZeRO-1, full recomputation, kernel efficiency 0.5.
        """
    let questions = [
        Question("tokens-per-step", "Tokens per step", unit: "tokens", hint: "B · s."),
        Question("flops-per-step", "Training FLOPs per step (model FLOPs, without recomputation)", unit: "FLOPs", tolerance: 0.05,
                 hint: "(6N + 12 · layers · s · h) per token × tokens; N ≈ 405.9 B."),
        Question("step-seconds", "Simulated step time", unit: "s", tolerance: 0.15,
                 hint: "Start from FLOPs / (G · P · efficiency), then add recomputation (one more forward), the bubble (p−1)/(m+p−1) and exposed communication."),
        Question("mfu", "Simulated MFU", unit: "fraction", tolerance: 0.15, hint: "Model FLOPs per second ÷ (G · P)."),
    ]
    let stretch = "Double the micro-batches to 32 (halving their size): what happens to the bubble, the MFU and the activations' memory?"

    static let yaml = Simulated.cluster(nodes: 2048, tiers: 3) + """

        workload: {model: llama-405b, batch: 2048, sequence: 8192, efficiency: 0.5}
        layout: {dp: 128, tp: 8, pp: 16, microbatches: 16, schedule: 1f1b, zero: 1, recompute: full}
        """

    func commands(quick: Bool) -> [String] { ["fleet simulate scenarios/llama-405b-16k-reliability.yaml --json"] }

    func givens() throws -> [String] {
        let device = try Simulated.scenario(Self.yaml, name: id).device
        return ["H100 peak (bf16 dense): \(String(format: "%.0f", device.peak(.bf16) / 1e12)) TFLOP/s"]
    }

    func solve() throws -> [String: Double] {
        let (s, r) = try Simulated.step(Self.yaml, name: id)
        return answers(s, r)
    }

    func answers(_ s: Scenario, _ r: StepReport) -> [String: Double] {
        let tokens = Double(s.batch * s.sequence)
        return ["tokens-per-step": tokens, "flops-per-step": s.model.trainingFLOPsPerToken(sequence: s.sequence) * tokens,
                "step-seconds": r.stepTime.seconds, "mfu": r.mfu]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let (s, r) = try Simulated.step(Self.yaml, name: id)
        var outcome = LabOutcome()
        outcome.table = SimulationText.step(s, r, wall: .zero)
        let b = r.breakdown
        outcome.figures = [("breakdown.svg", SVGChart.bars(title: "Llama 3 405B step on 16,384 H100: where the time goes", unit: "s",
                                                           [("compute", b.compute.seconds), ("tensor-parallel", b.tensorParallel.seconds),
                                                            ("pipeline wait", b.pipelineWait.seconds), ("dp exposed", b.dataParallelExposed.seconds),
                                                            ("optimizer", b.optimizer.seconds)]))]
        outcome.answers = answers(s, r)
        outcome.record = [("step_s", r.stepTime.seconds), ("mfu", r.mfu), ("bubble_fraction", r.bubbleFraction)]
        return outcome
    }
}
