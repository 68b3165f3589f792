import Engine
import Foundation
import Workflows
import Workload

/// Where a GPU's memory goes when training Llama 70B, and what ZeRO-1 takes away.
struct ZeROMemory: Exercise {
    let id = "zero-memory"
    let chapter = "Memory"
    let title = "Memory per GPU: weights, gradients, optimizer state, activations — and ZeRO-1"
    let minutes = 25
    let needs = "simulator"
    let background = """
        Mixed-precision training with Adam keeps, per parameter a GPU holds: bf16 weights (2 bytes), bf16
        gradients (2) and an fp32 master copy with two fp32 moments (12). Tensor and pipeline parallelism split
        the parameters over tp · pp GPUs; data parallelism replicates them. ZeRO-1 shards the optimizer state
        over the dp replicas (12/dp bytes per parameter), ZeRO-2 also the gradients, ZeRO-3 the weights.
        Activations depend on micro-batch size, sequence length and recomputation, not on dp.
        Setup: Llama 3 70B on 64 nodes × 8 H100 (80 GB), tp8 · pp4 · dp16, sequence 8192, one sequence per
        micro-batch, full recomputation.
        """
    let questions = [
        Question("parameters-per-gpu", "Parameters held by the GPU with the most (tp8 · pp4)", unit: "parameters", tolerance: 0.05,
                 hint: "About 70.6 B / (tp · pp); the first and last stages also hold the embedding or the head."),
        Question("optimizer-gb-zero0", "Optimizer state per GPU without ZeRO (GB, 1e9 bytes)", unit: "GB", tolerance: 0.05,
                 hint: "12 bytes per parameter held."),
        Question("optimizer-gb-zero1", "Optimizer state per GPU with ZeRO-1 over dp16 (GB)", unit: "GB", tolerance: 0.05,
                 hint: "The same, divided over the 16 replicas."),
    ]
    let stretch = "Find the smallest tp · pp that fits Llama 3 405B on 80 GB GPUs with ZeRO-1 and full recomputation — then check it with fleet simulate."

    func yaml(zero: Int) -> String {
        Simulated.cluster(nodes: 64) + """

            workload: {model: llama-70b, batch: 512, sequence: 8192, precision: bf16, efficiency: 0.5}
            layout: {dp: 16, tp: 8, pp: 4, microbatches: 32, schedule: 1f1b, zero: \(zero), recompute: full}
            """
    }

    func commands(quick: Bool) -> [String] { ["fleet plan llama-70b --tp 8 --pp 4 --dp 16 --batch 512 --seq 8192 --zero 1   # memory per rank"] }

    func estimates() throws -> [MemoryEstimate] { try [0, 1].map { try Simulated.step(yaml(zero: $0), name: "llama-70b zero \($0)").1.memory } }

    func solve() throws -> [String: Double] { answers(try estimates()) }

    func answers(_ m: [MemoryEstimate]) -> [String: Double] {
        ["parameters-per-gpu": m[0].optimizer / 12, "optimizer-gb-zero0": m[0].optimizer / 1e9, "optimizer-gb-zero1": m[1].optimizer / 1e9]
    }

    func bars(_ m: [MemoryEstimate]) -> [(label: String, value: Double)] {
        var bars: [(label: String, value: Double)] = []
        for (name, e) in zip(["ZeRO-0", "ZeRO-1"], m) {
            bars += [("\(name) weights", e.weights / 1e9), ("\(name) gradients", e.gradients / 1e9),
                     ("\(name) optimizer", e.optimizer / 1e9), ("\(name) activations", e.activations / 1e9)]
        }
        return bars
    }

    func run(_ settings: LabSettings) throws -> LabOutcome {
        let m = try estimates()
        var outcome = LabOutcome()
        let table = Table(columns: [("", 8), ("weights", 9), ("gradients", 10), ("optimizer", 10), ("activations", 12), ("total", 9), ("fits 80 GB", 10)])
        outcome.table = ["Llama 3 70B, tp8·pp4·dp16, 8192 tokens per micro-batch, full recompute: the fullest GPU (GB)", table.header()]
        for (name, e) in zip(["ZeRO-0", "ZeRO-1"], m) {
            let parts: [Double] = [e.weights, e.gradients, e.optimizer, e.activations, e.total]
            let cells: [String] = [name] + parts.map { String(format: "%.1f", $0 / 1e9) } + [e.total <= 80e9 ? "yes" : "no"]
            outcome.table.append(table.row(cells))
        }
        outcome.figures = [("memory.svg", SVGChart.bars(title: "Llama 3 70B per-GPU memory by part (GB)", unit: "GB",
                                                        bars(m)))]
        outcome.answers = answers(m)
        outcome.record = [("total_gb", m.map { $0.total / 1e9 }), ("optimizer_gb", m.map { $0.optimizer / 1e9 })]
        return outcome
    }
}
