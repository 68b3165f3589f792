import Engine
import Foundation
import Workflows
import Workload

/// Serving Llama 3 70B: compute-bound prefill, memory-bound decode, and the rate an SLO allows.
struct InferenceServing: Exercise {
    let id = "inference-serving"
    let chapter = "Inference at Scale"
    let title = "Serving Llama 3 70B: prefill vs decode on the roofline, and the load a latency objective allows"
    let minutes = 35
    let needs = "simulator"
    let background = """
        A forward pass over T new tokens costs about 2·N·T FLOPs (N parameters) and reads every weight once
        (N × 2 bytes in bf16) plus the KV cache it attends to. Its time on the roofline is the slower of
          FLOPs / (GPUs · peak · efficiency)   and   bytes / (GPUs · memory bandwidth)
        Prefill (the whole prompt at once) is compute-bound; decode (one token per sequence per step) is
        memory-bound — which is why servers batch many sequences per decode step. Each token keeps K and V
        in every layer: 2 · layers · kv-heads · head size · 2 bytes. Time to first token (TTFT) is queueing
        plus prefill; time per output token (TPOT) is the decode step, which grows with the batch.
        Setup: Llama 3 70B (80 layers, 8 KV heads of 128) in bf16 on instances of 8 H100 (989 TFLOP/s bf16,
        3.35 TB/s each, efficiency 0.5), prompts of about 1,000 tokens, answers of 50–500, continuous batching
        of up to 128 sequences; tensor-parallel all-reduces add about 28 µs per layer-pair step.
        """
    let questions = [
        Question("kv-bytes-per-token", "KV-cache bytes one token keeps across all layers", unit: "bytes", hint: "2 (K and V) · 80 · 8 · 128 · 2 bytes."),
        Question("prefill-s", "Seconds to prefill one 1,000-token prompt on one idle tp8 instance", unit: "s", tolerance: 0.15,
                 hint: "2 · 70.6 B · 1,000 FLOPs at 8 × 989 TFLOP/s × 0.5; the weights' read is far shorter; add the all-reduces."),
        Question("decode-s", "Seconds per output token for that single request", unit: "s", tolerance: 0.15,
                 hint: "Read 141 GB of weights at 8 × 3.35 TB/s, plus 160 all-reduce rounds of a few microseconds each."),
        Question("max-rate", "Highest of 4, 8, 16, 32, 48, 64, 96 requests/s that 4 instances serve with p99 TTFT ≤ 2 s and p99 TPOT ≤ 80 ms",
                 unit: "requests/s", tolerance: 0, absolute: 0.5, hint: "Decode steps slow as batches grow; past saturation, queues make TTFT explode."),
    ]
    let stretch = "Split the 32 GPUs into prefill-only and decode-only instances (disaggregation): which latency improves, and what must cross the network between them?"

    static let yaml = """
        name: llama-70b serving on 32 H100
        seed: 1
        cluster: {device: H100, nodes: 4, gpus_per_node: 8, scale_up: {bandwidth: 450 GB/s, latency: 2 us}}
        workload: {model: llama-70b, precision: bf16, efficiency: 0.5}
        serving:
          tp: 8
          rate: 8
          prompt: {distribution: exponential, mean: 1000}
          output: {distribution: uniform, min: 50, max: 500}
          max_batch: 128
          duration: 5 min
          objectives: {ttft_p99: 2 s, tpot_p99: 80 ms}
          rates: [4, 8, 16, 32, 48, 64, 96]
        """

    func serving() throws -> ServingScenario {
        guard let s = try ScenarioReader(path: "inference-serving", text: Self.yaml).readServing() else { throw LabError("no serving section") }
        return s
    }

    func commands(quick: Bool) -> [String] { ["fleet simulate scenarios/llama-70b-serving.yaml"] }

    func solve() throws -> [String: Double] {
        let s = try serving()
        return answers(s, sweep: ServingSimulator.sweep(s))
    }

    func answers(_ s: ServingScenario, sweep: [(rate: Double, report: ServingReport)]) -> [String: Double] {
        let alone = ServingSimulator.run(s, arrivals: [(arrival: 0, prompt: 1000, output: 100)])
        return ["kv-bytes-per-token": s.kvBytesPerToken, "prefill-s": alone.ttft.p50, "decode-s": alone.tpot.p50,
                "max-rate": ServingSimulator.highestRate(s, in: sweep)?.rate ?? 0]
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let s = try serving()
        let sweep = ServingSimulator.sweep(s)
        var outcome = LabOutcome()
        outcome.table = ServingText.lines(s, ServingSimulator.run(s), sweep: sweep)
        let rates = sweep.map(\.rate), reports = sweep.map(\.report)
        outcome.figures = [("latency.svg", SVGChart.lines(title: "Llama 3 70B on 4 × tp8 H100: p99 latency by request rate", unit: "ms (log scale)",
                                                          labels: rates.map { String(format: "%g/s", $0) },
                                                          series: [("TTFT p99", "#4878a8", reports.map { $0.ttft.p99 * 1000 }),
                                                                   ("TPOT p99", "#d08040", reports.map { $0.tpot.p99 * 1000 })], logarithmic: true))]
        outcome.answers = answers(s, sweep: sweep)
        outcome.record = [("rates", rates), ("ttft_p99_s", reports.map(\.ttft.p99)), ("tpot_p99_s", reports.map(\.tpot.p99))]
        return outcome
    }
}
