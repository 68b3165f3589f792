import Foundation

/// Failure statistics in closed form, beside the simulated run: how likely a job of a given
/// length is to see a failure at all, how many it should expect, and which parts dominate.
extension ReliabilityModel.Component {
    /// Probability that one unit survives `t` (exponential: e^(−t/MTTF); Weibull with the
    /// scale that gives this MTTF: e^(−(t/λ)^k), λ = MTTF / Γ(1 + 1/k)).
    public func survival(_ t: Double) -> Double {
        switch distribution {
        case .exponential: return exp(-t / mttf)
        case .weibull(let shape):
            let scale = mttf / tgamma(1 + 1 / shape)
            return exp(-pow(t / scale, shape))
        }
    }

    /// Mean time between failures of all `count` units together (each replaced when it fails).
    public var mtbf: Double { mttf / Double(count) }
}

extension ReliabilityModel {
    /// Probability of at least one failure within `t`: 1 − Π over units of their survival.
    public func failureProbability(within t: Double) -> Double {
        // Sum the logs: 16,384 GPUs' survivals multiplied directly underflow to zero.
        let logSurvival = components.reduce(0.0) { $0 + Double($1.count) * log(max($1.survival(t), .leastNonzeroMagnitude)) }
        return 1 - exp(logSurvival)
    }

    /// Expected failures within `t` with failed units replaced (t / MTBF in the long run).
    public func expectedFailures(within t: Double) -> Double { t / clusterMTBF }

    /// Each kind of part's share of the failures (its rate ÷ the cluster's).
    public var failureShares: [(name: String, mtbf: Double, share: Double)] {
        components.map { ($0.name, $0.mtbf, clusterMTBF / $0.mtbf) }
    }
}
