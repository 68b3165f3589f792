import Foundation

extension StepReport {
    /// The simulated step of one pipeline as Chrome/Perfetto trace JSON: a process per stage,
    /// a thread per lane (compute, pipeline, data-parallel).
    public func chromeTrace() -> String {
        let lanes = ["compute": 1, "pipeline": 2, "data-parallel": 3]
        var events = Set(spans.map(\.stage)).sorted().map {
            "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":\($0),\"args\":{\"name\":\"stage \($0)\"}}"
        }
        for span in spans {
            let start = Double(span.start.nanoseconds) / 1000, length = Double((span.end - span.start).nanoseconds) / 1000
            events.append("{\"ph\":\"X\",\"name\":\"\(span.name)\",\"pid\":\(span.stage),\"tid\":\(lanes[span.lane] ?? 4),\"ts\":\(start),\"dur\":\(length)}")
        }
        return "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + events.joined(separator: ",\n") + "\n]}\n"
    }
}

extension Scenario {
    /// One line: the model on how many of which device, the topology and the links.
    public var summary: String {
        let topology: String
        switch self.topology {
        case .singleSwitch: topology = "single switch"
        case let .fatTree(radix, tiers, over): topology = "fat-tree radix \(radix), \(tiers) tiers" + (over > 1 ? String(format: ", %.0f:1 oversubscribed", over) : "")
        case let .railOptimized(radix): topology = "rail-optimized, radix \(radix)"
        case let .torus(dimensions): topology = "torus " + dimensions.map(String.init).joined(separator: "×")
        case let .dragonfly(routers, nodes): topology = "dragonfly, \(routers) routers/group × \(nodes) nodes/router"
        }
        return "\(model.name) on \(gpus.formatted()) \(device.name) (\(nodes.formatted()) nodes × \(gpusPerNode)), \(topology), "
            + "scale-out \(scaleOut.bandwidth) / \(scaleOut.latency), scale-up \(scaleUp.bandwidth)"
    }
}
