import Foundation
import Parallelism

/// What makes a fleet other than uniform: slow nodes, degraded NICs, nodes of another device,
/// and stragglers drawn by seed. The step simulator prices each rank with its own device and
/// slowdown and simulates exactly the pipelines that hold one (see `StepSimulator.run()`).
public struct Asymmetry: Sendable, Hashable {
    /// Node → how many times slower its devices compute (≥ 1).
    public var slowNodes: [Int: Double] = [:]
    /// Node → the share of its NICs' bandwidth left (0 < f ≤ 1).
    public var degradedNodes: [Int: Double] = [:]
    /// Nodes of another device than the cluster's; later groups win where they overlap.
    public var groups: [DeviceGroup] = []
    /// A share of all devices, drawn by seed, that compute `factor` times slower.
    public var stragglers: Stragglers?
    /// A calibrated CPU whose ranks are pinned to cores of unequal speed.
    public var cores: PinnedCores?

    public struct DeviceGroup: Sendable, Hashable {
        public var nodes: ClosedRange<Int>
        public var device: Device
        public init(nodes: ClosedRange<Int>, device: Device) { self.nodes = nodes; self.device = device }
    }

    public struct Stragglers: Sendable, Hashable {
        public var fraction: Double
        /// How many times slower a straggler computes: every one's (`fixed`), the least
        /// (`uniform`) or the median (`lognormal`).
        public var factor: Double
        public var seed: UInt64
        /// How each straggler's own factor is drawn (by seed, from its GPU index).
        public var spread: Spread = .fixed

        public enum Spread: Sendable, Hashable {
            case fixed
            /// Uniform between `factor` and `max`.
            case uniform(max: Double)
            /// `factor` · e^(σ·z), z standard normal; never below 1.
            case lognormal(sigma: Double)
        }

        public init(fraction: Double, factor: Double, seed: UInt64, spread: Spread = .fixed) {
            self.fraction = fraction
            self.factor = factor
            self.seed = seed
            self.spread = spread
        }

        /// Whether `gpu` is one of them: a hash of (seed, gpu) below the fraction, so the same
        /// seed slows the same devices at any scale.
        public func slows(_ gpu: Int) -> Bool { Self.unit(seed, gpu) < fraction }

        /// How many times slower straggler `gpu` computes, drawn from its own hashes (the same at any scale).
        public func factor(of gpu: Int) -> Double {
            switch spread {
            case .fixed:
                return factor
            case let .uniform(max):
                return factor + (max - factor) * Self.unit(seed ^ 0x5EED_0001, gpu)
            case let .lognormal(sigma):
                // Box–Muller from two more of the GPU's hashes.
                let u1 = Swift.max(Self.unit(seed ^ 0x5EED_0002, gpu), 1e-300), u2 = Self.unit(seed ^ 0x5EED_0003, gpu)
                let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
                return Swift.max(1, factor * exp(sigma * z))
            }
        }

        /// The spread in words: `1.3×`, `1.1–2×, uniform`, `median 1.3×, lognormal σ 0.3`.
        public var description: String {
            switch spread {
            case .fixed: return "\(Asymmetry.format(factor))× slower"
            case let .uniform(max): return "\(Asymmetry.format(factor))–\(Asymmetry.format(max))× slower, uniform"
            case let .lognormal(sigma): return "median \(Asymmetry.format(factor))× slower, lognormal σ \(Asymmetry.format(sigma))"
            }
        }

        /// A uniform draw in [0, 1) from (seed, gpu): SplitMix64's finalizer.
        static func unit(_ seed: UInt64, _ gpu: Int) -> Double {
            var x = seed &+ UInt64(gpu) &* 0x9E37_79B9_7F4A_7C15
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            x ^= x >> 31
            return Double(x >> 11) / Double(1 << 53)
        }
    }

    /// Ranks pinned round-robin to the cores of a calibrated CPU (`fleet compare` pins them):
    /// rank r of a node — of the world when the nodes share the cores (test hosts) — runs on
    /// core r mod speeds.count and computes at `speeds[core]` × the rate the kernels were
    /// measured at (the cores' mean: calibrate's kernels run on whichever core the system gives).
    public struct PinnedCores: Sendable, Hashable {
        public var speeds: [Double]
        public var sharedByNodes: Bool
        public init(speeds: [Double], sharedByNodes: Bool = false) { self.speeds = speeds; self.sharedByNodes = sharedByNodes }

        public func core(of gpu: Int, gpusPerNode: Int) -> Int { (sharedByNodes ? gpu : gpu % max(1, gpusPerNode)) % max(1, speeds.count) }
        var isEmpty: Bool { speeds.allSatisfy { $0 == 1 } }
    }

    public init() {}

    public var isEmpty: Bool { slowNodes.isEmpty && degradedNodes.isEmpty && groups.isEmpty && (stragglers?.fraction ?? 0) == 0 && (cores?.isEmpty ?? true) }

    /// One named cause of asymmetry and the GPUs it touches, for the per-element delays.
    public struct Element: Sendable, Hashable {
        public let name: String
        public let gpus: [Int]
        /// The asymmetry with only this element.
        public let alone: Asymmetry
    }

    /// Each slow node, degraded NIC and device group on its own, and the stragglers as one.
    public func elements(gpusPerNode: Int, gpus: Int) -> [Element] {
        func nodeGPUs(_ node: Int) -> [Int] { Array((node * gpusPerNode)..<min(gpus, (node + 1) * gpusPerNode)) }
        var result: [Element] = []
        for (node, factor) in slowNodes.sorted(by: { $0.key < $1.key }) {
            var alone = Asymmetry(); alone.slowNodes = [node: factor]
            result.append(Element(name: "node \(node) computes \(Self.format(factor))× slower", gpus: nodeGPUs(node), alone: alone))
        }
        for (node, factor) in degradedNodes.sorted(by: { $0.key < $1.key }) {
            var alone = Asymmetry(); alone.degradedNodes = [node: factor]
            result.append(Element(name: "node \(node)'s NICs at \(Self.format(factor))× bandwidth", gpus: nodeGPUs(node), alone: alone))
        }
        for group in groups {
            var alone = Asymmetry(); alone.groups = [group]
            result.append(Element(name: "nodes \(group.nodes.lowerBound)–\(group.nodes.upperBound) on \(group.device.name)",
                                  gpus: group.nodes.flatMap(nodeGPUs), alone: alone))
        }
        if let stragglers, stragglers.fraction > 0 {
            var alone = Asymmetry(); alone.stragglers = stragglers
            let slowed = (0..<gpus).filter(stragglers.slows)
            result.append(Element(name: "\(slowed.count) straggler GPU(s) (\(stragglers.description), seed \(stragglers.seed))",
                                  gpus: slowed, alone: alone))
        }
        if let cores, !cores.isEmpty {
            for (core, speed) in cores.speeds.enumerated() where speed != 1 {
                var alone = Asymmetry()
                alone.cores = PinnedCores(speeds: cores.speeds.indices.map { $0 == core ? speed : 1 }, sharedByNodes: cores.sharedByNodes)
                result.append(Element(name: "ranks on core \(core) compute at \(String(format: "%.3f", speed))× the cores' mean",
                                      gpus: (0..<gpus).filter { cores.core(of: $0, gpusPerNode: gpusPerNode) == core }, alone: alone))
            }
        }
        return result
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.3g", value)
    }
}

extension Scenario {
    /// The device `gpu` is (its node's group's, or the cluster's).
    public func device(of gpu: Int) -> Device {
        let node = gpu / gpusPerNode
        return asymmetry.groups.last { $0.nodes.contains(node) }?.device ?? device
    }

    /// How many times slower than its device's own rate `gpu` computes (slow node × straggler ÷ its pinned core's speed).
    public func slowdown(of gpu: Int) -> Double {
        var factor = asymmetry.slowNodes[gpu / gpusPerNode] ?? 1
        if let stragglers = asymmetry.stragglers, stragglers.slows(gpu) { factor *= stragglers.factor(of: gpu) }
        // A calibrated CPU's pinned cores (not a node of another device's).
        if let cores = asymmetry.cores, !asymmetry.groups.contains(where: { $0.nodes.contains(gpu / gpusPerNode) }) {
            factor /= cores.speeds[cores.core(of: gpu, gpusPerNode: gpusPerNode)]
        }
        return factor
    }

    /// A GPU as it computes: its device and how many times slower than that device's rate.
    public struct Member: Hashable, Sendable {
        public let device: Device
        public let slowdown: Double
    }

    /// The distinct (device, slowdown) among `gpus`: the cluster's device alone on a uniform
    /// fleet, which every pipeline of every step asks, so it is not hashed per GPU there.
    public func kinds(of gpus: [Int]) -> [Member] {
        guard !asymmetry.isEmpty else { return [Member(device: device, slowdown: 1)] }
        return Array(Set(gpus.map { Member(device: self.device(of: $0), slowdown: slowdown(of: $0)) }))
    }

    /// The GPUs whose device, speed or NICs differ from the rest, in order.
    public var asymmetricGPUs: [Int] {
        guard !asymmetry.isEmpty else { return [] }
        return asymmetry.elements(gpusPerNode: gpusPerNode, gpus: gpus).flatMap(\.gpus).reduce(into: Set<Int>()) { $0.insert($1) }.sorted()
    }

    /// Peak FLOP/s of the whole fleet at the training precision, each node at its own device's (for MFU).
    public var fleetPeak: Double {
        guard !asymmetry.groups.isEmpty else { return Double(gpus) * device.peak(precision) }
        return (0..<nodes).reduce(0) { $0 + Double(gpusPerNode) * device(of: $1 * gpusPerNode).peak(precision) }
    }

    /// Whether every GPU can hold what its pipeline stage needs (`stages`: per stage, from the
    /// step's report): on a mixed fleet each device against the stages its GPUs run, the
    /// first that cannot named, with what to change.
    public func memoryProblem(_ stages: [MemoryEstimate]) -> String? {
        let largest = { (held: [MemoryEstimate]) in held.max { $0.total < $1.total } }
        guard !asymmetry.groups.isEmpty else { return largest(stages)?.problem(capacity: device.memoryBytes, device: device.name) }
        let mesh = layout.mesh
        var held: [String: (device: Device, stages: Set<Int>)] = [:]
        for gpu in 0..<min(gpus, mesh.worldSize) {
            let d = device(of: gpu)
            held[d.name, default: (d, [])].stages.insert(mesh.coordinates(of: gpu).pp)
        }
        for (name, entry) in held.sorted(by: { $0.key < $1.key }) {
            let mine = stages.filter { entry.stages.contains($0.stage) }
            if let problem = largest(mine)?.problem(capacity: entry.device.memoryBytes, device: name) { return problem }
        }
        return nil
    }
}
