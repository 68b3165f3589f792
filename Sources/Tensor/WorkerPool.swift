import Foundation
import Synchronization

/// A fixed set of worker threads for fleet's kernels. Dispatching work costs a few atomic
/// operations: idle workers spin briefly on a generation counter before they sleep, so the
/// hundreds of small parallel sections of a training step do not each pay a thread wake-up.
final class WorkerPool: @unchecked Sendable {   // shared state is atomics; the job is published by the generation counter
    let workers: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let sleepers = NSCondition()
    private var job: ((Int) -> Void)?
    private let busy = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    /// `workers` helper threads; the calling thread is worker 0 of every job.
    init(workers: Int) {
        self.workers = workers
        for index in 1...max(1, workers) where workers > 0 {
            let thread = Thread { [unowned self] in self.loop(index) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(w)` for w in 0...workers, on the caller and every helper, and waits for all.
    /// A nested call (from inside a job) runs every share on the calling thread instead.
    func run(_ body: @escaping (Int) -> Void) {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for w in 0...workers { body(w) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        job = body
        remaining.store(workers, ordering: .releasing)
        sleepers.lock()
        generation.add(1, ordering: .releasing)
        sleepers.broadcast()
        sleepers.unlock()
        body(0)
        while remaining.load(ordering: .acquiring) > 0 { }
        job = nil
    }

    /// Lets the helper threads exit (the pool must not be used afterwards).
    func stop() {
        stopped.store(true, ordering: .releasing)
        sleepers.lock()
        generation.add(1, ordering: .releasing)
        sleepers.broadcast()
        sleepers.unlock()
    }

    private func loop(_ index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > 20_000 {
                    sleepers.lock()
                    while generation.load(ordering: .acquiring) == seen { sleepers.wait() }
                    sleepers.unlock()
                }
            }
            seen = generation.load(ordering: .acquiring)
            if stopped.load(ordering: .acquiring) { return }
            job?(index)
            remaining.subtract(1, ordering: .releasing)
        }
    }
}
