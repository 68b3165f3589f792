import Foundation
import Yams

/// The `data:` section: training data read from storage every step.
extension ScenarioReader {
    func data(_ node: Node) throws -> InputPipeline {
        let map = try mapping(node, "data", allowed: ["bytes_per_token", "bytes_per_sample", "cache"])
        let perToken = map["bytes_per_token"], perSample = map["bytes_per_sample"]
        if perToken != nil && perSample != nil { throw fail(perSample, "data takes bytes_per_token or bytes_per_sample, not both") }
        var pipeline: InputPipeline
        if let perToken { pipeline = InputPipeline(size: .perToken(try quantity(perToken, "data.bytes_per_token", Units.bytes, positive: true))) }
        else if let perSample { pipeline = InputPipeline(size: .perSample(try quantity(perSample, "data.bytes_per_sample", Units.bytes, positive: true))) }
        else { throw fail(node, "data needs bytes_per_token (tokenised text, e.g. 2 B) or bytes_per_sample (e.g. 150 KB per image)") }
        if let cache = map["cache"] {
            let c = try mapping(cache, "data.cache", allowed: ["hit_rate", "bandwidth"])
            let rate = try required(c, "hit_rate", "data.cache")
            guard let value = rate.float, value.isFinite, (0...1).contains(value) else {
                throw fail(rate, "data.cache.hit_rate is the share of bytes the node-local cache holds, from 0 to 1 (got '\(rate.string ?? "?")')")
            }
            pipeline.cacheHitRate = value
            pipeline.cacheBandwidth = Bandwidth(bytesPerSecond: try quantity(required(c, "bandwidth", "data.cache"), "data.cache.bandwidth", Units.bandwidth, positive: true))
        }
        return pipeline
    }
}
