import Foundation
import Tensor
import Workload

/// PyTorch on the CPU training the same model as fleet, for `fleet bench train --vs-pytorch`:
/// the yardstick of fleet's speed, measured side by side in the same run (never a figure from
/// another machine or hour). Also times numpy's bundled OpenBLAS sgemm, which detects newer
/// CPUs than Debian's.
public enum PyTorchReference {
    public struct Result: Decodable {
        public var tokens_per_s: Double
        public var torch: String
        public var numpy_sgemm_gflops: Double?
        public var numpy_blas_kernel: String?
    }

    /// Trains `model` for `steps` steps in `python` (after 3 warm-up steps) and returns its throughput.
    public static func run(python: String, model: ModelSpec, batch: Int, sequence: Int, steps: Int, threads: Int) throws -> Result {
        let arguments = ["-c", script] + [model.layers, model.heads, model.dModel, model.mlpHidden, model.vocabulary,
                                         batch, sequence, steps, threads].map(String.init)
        let environment = ["OMP_NUM_THREADS": "\(threads)", "OPENBLAS_NUM_THREADS": "\(threads)", "MKL_NUM_THREADS": "\(threads)"]
        let executable = python.contains("/") ? python : ChildProcess.which(python) ?? python
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw FleetError("--python \(python) is not an executable; pass the Python that has PyTorch (pip install torch numpy threadpoolctl)")
        }
        // fleet's kernel choice is for fleet: numpy's newer OpenBLAS must pick its own.
        let outcome = try ChildProcess.run(executable, arguments, environment: environment,
                                           unset: ["OPENBLAS_CORETYPE", BLASKernelReport.markerVariable])
        guard outcome.status == 0 else {
            let last = outcome.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(outcome.status)"
            throw FleetError("the PyTorch reference failed in \(python): \(last); install it with pip install torch numpy threadpoolctl, or pass --python PATH", duringRun: true)
        }
        guard let line = outcome.stdout.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8)) else {
            throw FleetError("the PyTorch reference printed no result: \(outcome.stdout.suffix(200))", duringRun: true)
        }
        return result
    }

    /// The model, in PyTorch as a user would write it.
    public static let script = #"""
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

# gpt-tiny as fleet trains it: byte vocabulary, learned positions, pre-LayerNorm blocks with
# biases, GELU (tanh) MLP, tied output projection; AdamW (0.9, 0.95, wd 0.1), clip 1.0.
layers, heads, d, hidden, vocab = [int(x) for x in sys.argv[1:6]]
batch, seq, steps, threads = [int(x) for x in sys.argv[6:10]]
torch.set_num_threads(threads)
torch.manual_seed(1)

public class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, hidden), nn.Linear(hidden, d)
    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, heads, c // heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

public class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block() for _ in range(layers))
        self.lnf = nn.LayerNorm(d)
    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks: x = block(x)
        logits = self.lnf(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, vocab), targets.reshape(-1))

model = GPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
data = torch.randint(0, vocab, (batch, seq + 1))
def timed(f):
    start = time.perf_counter(); f(); return time.perf_counter() - start
def step():
    loss = model(data[:, :-1], data[:, 1:])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
for _ in range(3): step()
start = time.perf_counter()
for _ in range(steps): step()
elapsed = time.perf_counter() - start
result = {"tokens_per_s": steps * batch * seq / elapsed, "torch": torch.__version__, "threads": threads}
# numpy's own OpenBLAS (a newer build than the system's), one thread, 1024³: fleet's sgemm yardstick.
try:
    import numpy as np
    from threadpoolctl import threadpool_limits, threadpool_info
    with threadpool_limits(limits=1, user_api="blas"):
        a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)
        a @ b
        best = min(timed(lambda: a @ b) for _ in range(4))
    result["numpy_sgemm_gflops"] = 2 * 1024 ** 3 / best / 1e9
    result["numpy_blas_kernel"] = next((p.get("architecture") for p in threadpool_info() if p.get("internal_api") == "openblas"), None)
except ImportError:
    pass
print(json.dumps(result))
"""#
}
