import Dispatch
import Foundation
import Synchronization

/// Static work partitioning over a fixed number of threads.
///
/// Work is always split over *output* elements, never over a reduction, so every result
/// is computed by the same sequence of operations whatever the thread count.
public enum Parallel {
    /// Threads fleet's own kernels use on the calling thread (OpenBLAS has its own setting, see
    /// `BLAS`): 1 unless set by `with(threads:)`. Per thread, so trainers on threads of one
    /// process (in-process ranks) each keep their own.
    public static var threads: Int {
        pthread_getspecific(key).map { Int(bitPattern: $0) } ?? 1
    }

    /// Runs `body` with this thread's kernels split over `threads` threads.
    public static func with<T>(threads: Int, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: max(1, threads)))
        defer { pthread_setspecific(key, previous) }
        if threads > 1 { pool.withLock { if $0 == nil { $0 = WorkerPool(workers: threads - 1) } } }
        return try body()
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    /// The process's worker threads, made for the first width above 1 asked for; other widths
    /// (and a pool already busy with another caller's job) use Dispatch instead.
    private static let pool = Mutex<WorkerPool?>(nil)

    /// Calls `body` on disjoint contiguous sub-ranges covering `0..<count`.
    @inline(__always)
    public static func forEach(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachWorker(count, minimumPerThread: minimumPerThread) { _, range in body(range) }
    }

    /// Like `forEach`, also passing the worker index (in `0..<threads`) for per-worker scratch space.
    @inline(__always)
    public static func forEachWorker(_ count: Int, minimumPerThread: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let width = threads
        let workers = Swift.min(width, Swift.max(1, count / Swift.max(1, minimumPerThread)))
        if workers <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        let split = { (w: Int) in
            guard w < workers else { return }
            let start = count * w / workers, end = count * (w + 1) / workers
            if start < end { body(w, start..<end) }
        }
        if let pool = pool.withLock({ $0 }), workers <= pool.workers + 1 {
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
