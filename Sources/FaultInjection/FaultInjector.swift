import Foundation

/// The process, numeric and storage faults of one rank, acted out at the trainer's phase
/// boundaries: crash, hang, slow, NaN or bit flip in a buffer, failed checkpoint writes.
public final class FaultInjector {
    public let rank: Int
    public let faults: [Fault]
    /// Faults that acted, with their step (a crash is recorded by whoever sees the process die).
    public private(set) var fired: [(fault: Fault, step: Int)] = []

    public init(plan: FaultPlan, rank: Int) {
        self.rank = rank
        faults = plan.faults(of: rank)
    }

    public var isEmpty: Bool { faults.isEmpty }

    private func once(_ fault: Fault, _ step: Int) -> Bool {
        guard !fired.contains(where: { $0.fault == fault && $0.step == step }) else { return false }
        fired.append((fault, step))
        return true
    }

    /// Reaching `phase` of `step` (1-based): a crash or a hang planned here happens now.
    public func reach(step: Int, phase: Fault.Phase) {
        for fault in faults where fault.acts(at: step, phase: phase) {
            switch fault.kind {
            case .crash:
                say("fleet: injected fault on rank \(rank): \(fault)")
                if fault.gentle { exit(3) }
                kill(getpid(), SIGKILL)
            case .hang:
                say("fleet: injected fault on rank \(rank): \(fault) (this rank stops responding)")
                while true { sleep(3600) }
            default: break
            }
        }
    }

    /// A straggler's extra time after a compute phase that took `seconds`.
    public func slowdown(step: Int, phase: Fault.Phase, seconds: Double) {
        for fault in faults where fault.kind == .slow && fault.acts(at: step, phase: phase) {
            _ = once(fault, step)
            usleep(useconds_t(max(0, seconds * (fault.factor - 1)) * 1e6))
        }
    }

    /// Corrupts one element of `gradients` (or, for `target=parameter` faults, of
    /// `parameters`) in `ranges`: NaN, or the top exponent bit flipped. Returns the fault.
    @discardableResult
    public func corruptNumbers(step: Int, parameters: Bool, buffer: UnsafeMutablePointer<Float>, ranges: [Range<Int>]) -> Fault? {
        for fault in faults where (fault.kind == .nan || fault.kind == .bitflip) && fault.targetsParameters == parameters && fault.steps.contains(step) {
            // The largest range: a weight matrix every step uses (an unused embedding row would hide the fault).
            guard let range = ranges.max(by: { $0.count < $1.count }), !range.isEmpty, once(fault, step) else { continue }
            let index = range.lowerBound + range.count / 2
            if fault.kind == .nan { buffer[index] = .nan } else { buffer[index] = Float(bitPattern: buffer[index].bitPattern ^ (1 << UInt32(fault.bit))) }
            return fault
        }
        return nil
    }

    /// A checkpoint write planned to fail at `step`: `.full` throws, torn kills halfway.
    public func checkpointFault(step: Int) -> Fault? {
        guard let fault = faults.first(where: { $0.kind == .checkpoint && $0.steps.contains(step) }), once(fault, step) else { return nil }
        return fault
    }
}

/// One line on standard error with a plain write (a failed write must not stop the fault being acted out).
private func say(_ line: String) {
    _ = Array((line + "\n").utf8).withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
