import Collectives
import Engine
import Foundation
import Parallelism
import Tensor
import Workload

/// How this machine's cores compute side by side: a block of work, one BLAS thread, run on
/// each core alone, then on every core at once (as ranks do) — in rounds that take both, so a
/// slow minute weighs on both alike. Two busy cores of a virtual machine are often not twice
/// one (shared caches, memory bandwidth, the host's other guests). The block is the model's
/// heaviest products, or (`steps`) a real one-process training step's forward and backward,
/// whose memory-bound kernels (norms, attention, GELU) contend where products do not.
public struct CoreContention {
    /// The products of a block and how many calls of each (about `blockSeconds` on one core).
    public let shapes: [(shape: GEMMShape, calls: Int)]
    public let rounds: Int
    public let cores: Int
    /// When set, a block is one training step of this model at this batch instead.
    public var steps: (model: ModelSpec, batch: Int)?

    /// `rates`: the calibrated FLOP/s of `shapes`, which size the block.
    public init(shapes: [GEMMShape], rates: (GEMMShape) -> Double, rounds: Int, cores: Int = WorldSetup.usableCores, blockSeconds: Double = 0.1) {
        let each = blockSeconds / Double(max(1, shapes.count))
        self.shapes = shapes.map { ($0, max(1, Int(each / max($0.flops.seconds(at: rates($0)), 1e-9)))) }
        self.rounds = rounds
        self.cores = cores
    }

    /// Seconds of one block, per round and core: on the core alone, and with every core running one.
    public struct Result: Sendable {
        public var alone: [[Double]] = []
        public var together: [[Double]] = []
        public init() {}

        /// Each round's mean over the cores of (time together ÷ time alone): ≥ 1 where busy cores slow each other.
        public var slowdowns: [Double] {
            zip(alone, together).map { a, t in zip(a, t).map { $1 / $0 }.reduce(0, +) / Double(max(1, a.count)) }
        }
        /// The contention: the mean over the cores of (best time together ÷ best time alone). The
        /// host's noise only ever slows a block, and a slow round on either side says nothing
        /// about cores slowing each other: per-round ratios spread 24–79 % over five rounds here
        /// and their median read 1.20 where two busy cores computed a step as fast as one.
        public var contention: Double {
            guard let count = alone.first?.count, count > 0, !together.isEmpty else { return 1 }
            let ratios = (0..<count).map { core in together.map { $0[core] }.min()! / alone.map { $0[core] }.min()! }
            return ratios.reduce(0, +) / Double(count)
        }
        /// Each core's best block time alone and with every core busy (seconds): the drift probe's reference.
        public var best: KernelCalibration.CoreSteps? {
            guard let count = alone.first?.count, count > 0, !together.isEmpty else { return nil }
            return KernelCalibration.CoreSteps(alone: (0..<count).map { core in alone.map { $0[core] }.min()! },
                                               together: (0..<count).map { core in together.map { $0[core] }.min()! })
        }
        /// Each core's speed alone over the cores' mean, from each core's best round (as the
        /// contention: a slow round says more about the host's other guests than about the core).
        public var speeds: [Double] {
            guard let count = alone.first?.count, count > 0 else { return [] }
            let times = (0..<count).map { core in alone.map { $0[core] }.min()! }
            let mean = times.reduce(0, +) / Double(count)
            return times.map { mean / $0 }
        }
    }

    public func measure() -> Result {
        var result = Result()
        guard cores > 1 else { return result }
        BLAS.setThreads(1)
        for _ in 0..<rounds {
            result.alone.append((0..<cores).map { runBlocks(on: [$0])[0] })
            result.together.append(runBlocks(on: Array(0..<cores)))
        }
        return result
    }

    /// One thread per core in `on`, each pinned to it, started together; returns each one's block time.
    public func runBlocks(on cores: [Int]) -> [Double] {
        let times = TimeSlots(count: cores.count)
        let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        let block = self.shapes, slots = times
        for (index, core) in cores.enumerated() {
            done.enter()
            let thread = Thread { [steps] in
                WorldSetup.pin(rank: core)
                if let steps {
                    // A trainer of its own, warmed by one step; the block is the next step's forward and backward.
                    let trainer = try? InStepSampler(model: steps.model, batch: steps.batch, rounds: 1, perRound: 1, warmup: 1)
                    ready.signal()
                    go.wait()
                    slots.pointer[index] = (try? trainer?.takeStep().computeSeconds) ?? .nan
                    done.leave()
                    return
                }
                let buffers = block.map { entry -> (FloatBuffer, FloatBuffer, FloatBuffer) in
                    let s = entry.shape
                    let a = FloatBuffer(count: s.m * s.k), b = FloatBuffer(count: s.k * s.n)
                    for i in 0..<a.count { a[i] = Float(i % 7) * 0.25 - 0.5 }
                    for i in 0..<b.count { b[i] = Float(i % 5) * 0.25 - 0.5 }
                    return (a, b, FloatBuffer(count: s.m * s.n))
                }
                ready.signal()
                go.wait()
                slots.pointer[index] = Measurement.clock {
                    for (entry, (a, b, c)) in zip(block, buffers) {
                        let s = entry.shape, lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n
                        for _ in 0..<entry.calls {
                            BLAS.gemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                                      c: c.pointer, ldc: s.n)
                        }
                    }
                }
                done.leave()
            }
            thread.start()
        }
        // Every thread pinned and its buffers filled before any starts its block.
        for _ in cores { ready.wait() }
        for _ in cores { go.signal() }
        done.wait()
        return Array(UnsafeBufferPointer(start: times.pointer, count: cores.count))
    }
}

/// One figure per thread (or slot), each written by one thread only, read after it finishes.
final class TimeSlots: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    init(count: Int) { pointer = .allocate(capacity: count); pointer.initialize(repeating: 0, count: count) }
    deinit { pointer.deallocate() }
}
