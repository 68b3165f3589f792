/// The faults of a run, as data: from `--inject kind:key=value,…` specs, or drawn from a
/// seed and a rate (exponential inter-arrival times per rank).
public struct FaultPlan: Sendable, Hashable {
    public var faults: [Fault]

    public init(faults: [Fault] = []) { self.faults = faults }

    public enum Invalid: Error, CustomStringConvertible, Equatable {
        case spec(String, reason: String)
        public var description: String {
            switch self {
            case let .spec(spec, reason):
                return "--inject \(spec): \(reason); e.g. crash:rank=1,step=30 or slow:rank=2,factor=3,steps=10-20 "
                    + "(kinds: \(Fault.Kind.allCases.map(\.rawValue).joined(separator: ", ")))"
            }
        }
    }

    /// Parses `kind:rank=R,step=S` (or `steps=A-B`) with optional `phase=`, `factor=`, `ms=`,
    /// `target=gradient|parameter`, `signal=kill|exit`, `mode=full|torn`.
    public static func parse(_ specs: [String], worldSize: Int? = nil) throws -> FaultPlan {
        FaultPlan(faults: try specs.map { try parse($0, worldSize: worldSize) })
    }

    static func parse(_ spec: String, worldSize: Int?) throws -> Fault {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard let kind = parts.first.flatMap(Fault.Kind.init(rawValue:)) else {
            throw Invalid.spec(spec, reason: "unknown fault kind '\(parts.first ?? "")'")
        }
        var values: [String: String] = [:]
        for pair in (parts.count > 1 ? parts[1] : "").split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw Invalid.spec(spec, reason: "'\(pair)' is not key=value") }
            values[kv[0]] = kv[1]
        }
        let allowed: Set = ["rank", "step", "steps", "phase", "factor", "ms", "target", "signal", "mode", "bit"]
        if let unknown = values.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw Invalid.spec(spec, reason: "unknown key '\(unknown)' (keys: \(allowed.sorted().joined(separator: ", ")))")
        }
        guard let rankText = values["rank"], let rank = Int(rankText), rank >= 0 else { throw Invalid.spec(spec, reason: "rank=R is required") }
        if let worldSize, rank >= worldSize { throw Invalid.spec(spec, reason: "rank \(rank) does not exist in a world of \(worldSize) ranks") }
        let steps: ClosedRange<Int>
        if let text = values["steps"] {
            let bounds = text.split(separator: "-").compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] >= 1, bounds[0] <= bounds[1] else { throw Invalid.spec(spec, reason: "steps must be A-B with 1 ≤ A ≤ B") }
            steps = bounds[0]...bounds[1]
        } else if let text = values["step"], let step = Int(text), step >= 1 {
            steps = step...step
        } else {
            throw Invalid.spec(spec, reason: "step=S or steps=A-B is required (steps count from 1)")
        }
        var fault = Fault(kind: kind, rank: rank, steps: steps)
        if let text = values["phase"] {
            guard let phase = Fault.Phase(rawValue: text) else { throw Invalid.spec(spec, reason: "phase must be forward, backward, optimizer or any") }
            fault.phase = phase
        }
        if let text = values["factor"] {
            guard let factor = Double(text), factor >= 1 else { throw Invalid.spec(spec, reason: "factor must be a number ≥ 1") }
            fault.factor = factor
        }
        if let text = values["ms"] {
            guard let ms = Double(text), ms >= 0 else { throw Invalid.spec(spec, reason: "ms must be a number ≥ 0") }
            fault.milliseconds = ms
        }
        if let text = values["target"] {
            guard ["gradient", "parameter"].contains(text) else { throw Invalid.spec(spec, reason: "target must be gradient or parameter") }
            fault.targetsParameters = text == "parameter"
        }
        if let text = values["bit"] {
            guard let bit = Int(text), (0..<32).contains(bit) else { throw Invalid.spec(spec, reason: "bit must be 0…31") }
            fault.bit = bit
        }
        if let text = values["signal"] {
            guard ["kill", "exit"].contains(text) else { throw Invalid.spec(spec, reason: "signal must be kill or exit") }
            fault.gentle = text == "exit"
        }
        if let text = values["mode"] {
            guard ["full", "torn"].contains(text) else { throw Invalid.spec(spec, reason: "mode must be full or torn") }
            fault.gentle = text == "torn"
        }
        return fault
    }

    /// Crashes drawn per rank with exponential inter-arrival times of mean 1/`rate` steps,
    /// from a seed: the same seed gives the same plan.
    public static func random(rate: Double, seed: UInt64, ranks: Int, steps: Int, kinds: [Fault.Kind] = [.crash]) -> FaultPlan {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func uniform() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Double(state >> 11) + 0.5) / Double(1 << 53)
        }
        var faults: [Fault] = []
        guard rate > 0 else { return FaultPlan() }
        for rank in 0..<ranks {
            var time = 0.0
            while true {
                time += -log(uniform()) / rate
                let step = Int(time.rounded(.up))
                guard step <= steps else { break }
                faults.append(Fault(kind: kinds[Int(uniform() * Double(kinds.count)) % kinds.count], rank: rank, steps: step...step))
            }
        }
        return FaultPlan(faults: faults.sorted { ($0.steps.lowerBound, $0.rank) < ($1.steps.lowerBound, $1.rank) })
    }

    /// The faults of `rank`.
    public func faults(of rank: Int) -> [Fault] { faults.filter { $0.rank == rank } }
}

#if canImport(Glibc)
import Glibc
#endif
