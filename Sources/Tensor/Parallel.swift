import Dispatch

/// Static work partitioning over a fixed number of threads.
///
/// Work is always split over *output* elements, never over a reduction, so every result
/// is computed by the same sequence of operations whatever the thread count.
public enum Parallel {
    /// Threads used by fleet's own kernels (OpenBLAS has its own setting, see `BLAS`).
    nonisolated(unsafe) public static var threads = 1 {
        didSet {
            guard threads != oldValue else { return }
            pool?.stop()
            pool = threads > 1 ? WorkerPool(workers: threads - 1) : nil
        }
    }
    nonisolated(unsafe) private static var pool: WorkerPool?

    /// Calls `body` on disjoint contiguous sub-ranges covering `0..<count`.
    @inline(__always)
    public static func forEach(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachWorker(count, minimumPerThread: minimumPerThread) { _, range in body(range) }
    }

    /// Like `forEach`, also passing the worker index (in `0..<threads`) for per-worker scratch space.
    @inline(__always)
    public static func forEachWorker(_ count: Int, minimumPerThread: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let workers = Swift.min(threads, Swift.max(1, count / Swift.max(1, minimumPerThread)))
        if workers <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        let split = { (w: Int) in
            guard w < workers else { return }
            let start = count * w / workers, end = count * (w + 1) / workers
            if start < end { body(w, start..<end) }
        }
        if let pool, workers <= threads {
            withoutActuallyEscaping(split) { pool.run($0) }
        } else {
            // The parts write disjoint ranges, which is what makes running `body` concurrently safe.
            withoutActuallyEscaping(split) { escaping in
                nonisolated(unsafe) let parts = escaping
                DispatchQueue.concurrentPerform(iterations: workers) { parts($0) }
            }
        }
    }
}
