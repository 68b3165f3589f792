import Foundation
import Workload

/// Inference serving (`serving:` in a scenario): model instances of `tp` GPUs each, Poisson
/// request arrivals, continuous batching under a KV-cache budget, prefill and decode priced by
/// the device roofline. Simulated request by request.
public struct ServingScenario: Sendable {
    public enum Length: Sendable, Hashable {
        case fixed(Int), exponential(mean: Double), uniform(Int, Int)

        func draw(_ random: inout SplitMix64) -> Int {
            switch self {
            case .fixed(let n): return n
            case .exponential(let mean): return max(1, Int((-mean * log(1 - random.unit())).rounded()))
            case let .uniform(low, high): return low + random.below(high - low + 1)
            }
        }
        public var mean: Double {
            switch self {
            case .fixed(let n): return Double(n)
            case .exponential(let mean): return mean
            case let .uniform(low, high): return Double(low + high) / 2
            }
        }
    }

    public var name: String
    public var device: Device
    public var model: ModelSpec
    public var precision: Device.Precision = .bf16
    public var efficiency = 0.5
    /// GPUs per instance (tensor parallel over the node's scale-up link), and instances.
    public var tp = 1, instances = 1
    public var scaleUp: Link
    /// Requests per second over all instances (Poisson), and their prompt and output lengths.
    public var rate: Double
    public var prompt: Length, output: Length
    /// Most sequences decoded together per instance.
    public var maxBatch = 256
    /// Simulated arrival window; the run continues until every request finishes.
    public var duration: Double
    public var seed: UInt64 = 1
    /// Latency objectives (p99) for the rate sweep, and the rates to try.
    public var ttftObjective: Double?, tpotObjective: Double?
    public var rates: [Double] = []
    /// Prefill/decode disaggregation: this many instances only prefill, the rest only decode, and
    /// each request's KV cache crosses to its decode instance at `handoverBandwidth` (bytes/s).
    public var prefillInstances: Int?
    public var handoverBandwidth = 50e9

    public init(name: String, device: Device, model: ModelSpec, scaleUp: Link, rate: Double, prompt: Length, output: Length, duration: Double) {
        self.name = name
        self.device = device
        self.model = model
        self.scaleUp = scaleUp
        self.rate = rate
        self.prompt = prompt
        self.output = output
        self.duration = duration
    }

    /// Bytes of K and V one token keeps in every layer.
    public var kvBytesPerToken: Double {
        2 * Double(model.layers * model.kvHeads * model.headSize * precision.bytes)
    }

    public var weightBytes: Double { Double(model.parameterCount * precision.bytes) }

    /// KV-cache budget of one instance: its GPUs' memory less the weights, 90 % usable.
    public var kvBudget: Double { max(0, Double(tp) * device.memoryBytes * 0.9 - weightBytes) }

    /// One forward pass over `tokens` new tokens that attend to `attended` earlier positions in
    /// all: the slower of its FLOPs at `efficiency` of peak and its memory traffic (weights once,
    /// the KV cache read), plus two tensor-parallel all-reduces per layer on the scale-up link.
    public func forward(tokens: Double, attended: Double) -> Double {
        let flops = 2 * Double(model.parameterCount) * tokens + 4 * Double(model.layers * model.dModel) * attended
        let bytes = weightBytes + attended * kvBytesPerToken
        let roofline = max(flops / (Double(tp) * device.peak(precision) * efficiency), bytes / (Double(tp) * device.memoryBandwidth.bytesPerSecond))
        guard tp > 1 else { return roofline }
        let message = tokens * Double(model.dModel * precision.bytes) * 2 * Double(tp - 1) / Double(tp)
        return roofline + Double(2 * model.layers) * (message / scaleUp.bandwidth.bytesPerSecond + 2 * Double(tp - 1) * scaleUp.latency.seconds)
    }

    /// What the scenario cannot be, if anything.
    public func problem() -> String? {
        if kvBudget <= 0 { return "\(model.name)'s weights (\(Int(weightBytes / 1e9)) GB) do not fit in \(tp) × \(device.name); raise serving.tp" }
        let longest = kvBytesPerToken * Double(maxLength(prompt) + maxLength(output))
        if longest > kvBudget { return "one request of the longest lengths needs more KV cache than an instance has; raise serving.tp or shorten the lengths" }
        if rate * duration > 200_000 || rates.contains(where: { $0 * duration > 200_000 }) { return "serving.rate × serving.duration asks for more than 200,000 requests; shorten the duration" }
        return nil
    }

    func maxLength(_ l: Length) -> Int {
        switch l {
        case .fixed(let n): return n
        case .exponential(let mean): return Int(mean * 20)
        case let .uniform(_, high): return high
        }
    }
}

/// What a serving run measured.
public struct ServingReport: Sendable {
    public let requests: Int
    public let completedPerSecond: Double, outputTokensPerSecond: Double
    public let ttft: (p50: Double, p99: Double), tpot: (p50: Double, p99: Double)
    public let kvOccupancy: (mean: Double, peak: Double)
    public let wall: Double

    public func meets(ttft objective: Double?, tpot tpotObjective: Double?) -> Bool {
        (objective.map { ttft.p99 <= $0 } ?? true) && (tpotObjective.map { tpot.p99 <= $0 } ?? true)
    }
}

public enum ServingSimulator {
    struct Request {
        let arrival: Double, prompt: Int, output: Int
        var firstToken = 0.0, generated = 0, finish = 0.0
    }

    /// What an instance does: both phases (continuous batching), or one side of a disaggregated pair.
    enum Phase { case both, prefill, decode }

    struct Occupancy { var weighted = 0.0, time = 0.0, peak = 0.0 }

    /// One instance serving `mine` (in the order they become ready); returns when it finished.
    static func serve(_ s: ServingScenario, _ requests: inout [Request], _ mine: [Int], phase: Phase,
                      ready: (Request) -> Double, occupancy: inout Occupancy) -> Double {
        var queue = mine[...], running: [Int] = []
        var clock = 0.0, reserved = 0.0
        // A prefill instance holds a prompt's KV only until it is sent; a decoding one holds the whole length.
        let held = { (r: Request) in s.kvBytesPerToken * Double(phase == .prefill ? r.prompt : r.prompt + r.output) }
        while !queue.isEmpty || !running.isEmpty {
            if running.isEmpty, let next = queue.first, ready(requests[next]) > clock { clock = ready(requests[next]) }
            // Admit what is ready while the batch and the KV budget allow.
            var admitted: [Int] = []
            while let next = queue.first, ready(requests[next]) <= clock, running.count + admitted.count < s.maxBatch {
                if reserved + held(requests[next]) > s.kvBudget { break }
                reserved += held(requests[next])
                admitted.append(next)
                queue.removeFirst()
            }
            let step: Double
            if !admitted.isEmpty && phase != .decode {
                // Prefill the newcomers together (decodes wait one iteration); each gets its first token.
                let tokens = admitted.reduce(0.0) { $0 + Double(requests[$1].prompt) }
                let attended = admitted.reduce(0.0) { $0 + Double(requests[$1].prompt) * Double(requests[$1].prompt) / 2 }
                step = s.forward(tokens: tokens, attended: attended)
                for i in admitted {
                    requests[i].firstToken = clock + step
                    requests[i].generated = 1
                }
                if phase == .both { running += admitted }
            } else {
                running += admitted
                // A one-token answer came with its prefill: nothing to decode.
                running.removeAll { i in
                    guard requests[i].generated >= requests[i].output else { return false }
                    requests[i].finish = max(clock, requests[i].firstToken)
                    reserved -= held(requests[i])
                    return true
                }
                let attended = running.reduce(0.0) { $0 + Double(requests[$1].prompt + requests[$1].generated) }
                step = running.isEmpty ? 0 : s.forward(tokens: Double(running.count), attended: attended)
                for i in running { requests[i].generated += 1 }
            }
            occupancy.weighted += reserved / s.kvBudget * step
            occupancy.time += step
            occupancy.peak = max(occupancy.peak, reserved / s.kvBudget)
            clock += step
            if phase == .prefill {
                for i in admitted { reserved -= held(requests[i]) }
                continue
            }
            running.removeAll { i in
                guard requests[i].generated >= requests[i].output else { return false }
                requests[i].finish = max(clock, requests[i].firstToken)
                reserved -= held(requests[i])
                return true
            }
        }
        return clock
    }

    /// Simulates `s` at `rate` requests per second (default: the scenario's).
    public static func run(_ s: ServingScenario, rate: Double? = nil) -> ServingReport {
        let rate = rate ?? s.rate
        var random = SplitMix64(seed: s.seed)
        var arrivals: [(arrival: Double, prompt: Int, output: Int)] = []
        var t = 0.0
        while true {
            t += -log(1 - random.unit()) / rate
            if t > s.duration { break }
            arrivals.append((t, s.prompt.draw(&random), max(1, s.output.draw(&random))))
        }
        return run(s, arrivals: arrivals)
    }

    /// Serves exactly these requests (arrival time, prompt and output tokens), in arrival order.
    public static func run(_ s: ServingScenario, arrivals: [(arrival: Double, prompt: Int, output: Int)]) -> ServingReport {
        var requests = arrivals.map { Request(arrival: $0.arrival, prompt: $0.prompt, output: max(1, $0.output)) }
        var occupancy = Occupancy()
        var end = 0.0
        func spread(_ indices: [Int], over instances: Int) -> [[Int]] {
            (0..<instances).map { k in stride(from: k, to: indices.count, by: instances).map { indices[$0] } }
        }
        if let prefill = s.prefillInstances, prefill < s.instances {
            // Disaggregated: prefill instances hand each request's KV cache over the link to a decode instance.
            for mine in spread(Array(requests.indices), over: prefill) {
                end = max(end, serve(s, &requests, mine, phase: .prefill, ready: { $0.arrival }, occupancy: &occupancy))
            }
            let handover = { (r: Request) in r.firstToken + Double(r.prompt) * s.kvBytesPerToken / s.handoverBandwidth }
            let byReady = requests.indices.sorted { handover(requests[$0]) < handover(requests[$1]) }
            for mine in spread(byReady, over: s.instances - prefill) {
                end = max(end, serve(s, &requests, mine, phase: .decode, ready: handover, occupancy: &occupancy))
            }
        } else {
            // Round-robin over instances; each runs its own continuous batch.
            for mine in spread(Array(requests.indices), over: s.instances) {
                end = max(end, serve(s, &requests, mine, phase: .both, ready: { $0.arrival }, occupancy: &occupancy))
            }
        }
        let ttft = requests.map { $0.firstToken - $0.arrival }.sorted()
        let tpot = requests.filter { $0.output > 1 }.map { ($0.finish - $0.firstToken) / Double($0.output - 1) }.sorted()
        func quantile(_ v: [Double], _ q: Double) -> Double {
            v.isEmpty ? 0 : v[min(v.count - 1, max(0, Int((q * Double(v.count)).rounded(.up)) - 1))]
        }
        let wall = max(end, 1e-9)
        return ServingReport(requests: requests.count, completedPerSecond: Double(requests.count) / wall,
                             outputTokensPerSecond: Double(requests.reduce(0) { $0 + $1.output }) / wall,
                             ttft: (quantile(ttft, 0.5), quantile(ttft, 0.99)), tpot: (quantile(tpot, 0.5), quantile(tpot, 0.99)),
                             kvOccupancy: (occupancy.time > 0 ? occupancy.weighted / occupancy.time : 0, occupancy.peak), wall: wall)
    }

    /// The scenario served at each of its `rates`, slowest first.
    public static func sweep(_ s: ServingScenario) -> [(rate: Double, report: ServingReport)] {
        s.rates.sorted().map { ($0, run(s, rate: $0)) }
    }

    /// The highest rate of `sweep` whose p99 latencies meet the scenario's objectives (nil: none does).
    public static func highestRate(_ s: ServingScenario, in sweep: [(rate: Double, report: ServingReport)]) -> (rate: Double, report: ServingReport)? {
        sweep.last { $0.report.meets(ttft: s.ttftObjective, tpot: s.tpotObjective) }
    }

    public static func highestRate(_ s: ServingScenario) -> (rate: Double, report: ServingReport)? { highestRate(s, in: sweep(s)) }
}
