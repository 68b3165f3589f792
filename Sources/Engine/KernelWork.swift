import Parallelism
import Workload

/// The compute of a piece of a step — matrix products by shape and elements per kernel —
/// summed from the step plan's operations, so a calibrated device prices exactly what the
/// trainer runs.
public struct KernelWork: Sendable, Hashable {
    public var gemms: [GEMMShape: Int] = [:]
    public var elements: [ElementKernel: Double] = [:]

    public init() {}

    /// The compute operations among `ops` (communication is priced by the network).
    public init(_ ops: [StepOp]) {
        for op in ops {
            switch op {
            case let .matmul(shape): gemm(shape)
            case let .kernel(kernel, elements, _): add(kernel, Double(elements))
            case let .optimizer(parameters): add(.optimizer, Double(parameters))
            default: break
            }
        }
    }

    mutating func gemm(_ shape: GEMMShape, times: Int = 1) { gemms[shape, default: 0] += times }
    mutating func add(_ kernel: ElementKernel, _ count: Double) { elements[kernel, default: 0] += count }

    public var flops: FLOPs { gemms.reduce(.zero) { $0 + $1.key.flops * Double($1.value) } }

    public static func + (a: KernelWork, b: KernelWork) -> KernelWork {
        var sum = a
        for (shape, count) in b.gemms { sum.gemm(shape, times: count) }
        for (kernel, count) in b.elements { sum.add(kernel, count) }
        return sum
    }

    /// One micro-batch's forward and backward compute on each pipeline stage (tensor rank 0 of
    /// the first replica) of `model` under `layout`, at `sequences` per micro-batch.
    public static func stages(model: ModelSpec, layout: ParallelLayout, batch: Int, sequence: Int) -> [(forward: KernelWork, backward: KernelWork)] {
        let plan = ShardPlan(model: model, layout: layout)
        return (0..<layout.pp).map { stage in
            let program = StepProgram(plan: plan, rank: layout.mesh.rank(dp: 0, tp: 0, pp: stage),
                                      options: StepOptions(batch: batch, sequence: sequence))
            let work = program.microbatchWork
            return (KernelWork(work.forward), KernelWork(work.backward))
        }
    }
}
