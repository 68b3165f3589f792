import Foundation

/// A scenario's training budget and prices: `workload.tokens` or `workload.steps`, and `cost:`.
public struct TrainingBudget: Sendable, Hashable {
    public enum Amount: Sendable, Hashable { case tokens(Double), steps(Int) }
    /// nil when the scenario prices only its fabric.
    public var amount: Amount?
    /// Price of one GPU-hour, and optionally of a switch and a cable (the fabric's capital cost).
    public var gpuHour: Double?
    public var switchPrice: Double?, cablePrice: Double?

    public init(amount: Amount?) { self.amount = amount }

    /// Steps the budget takes at `tokensPerStep` (a token budget rounds up to whole steps); nil without one.
    public func steps(tokensPerStep: Int) -> Int? {
        switch amount {
        case .steps(let n)?: return n
        case .tokens(let t)?: return Int((t / Double(tokensPerStep)).rounded(.up))
        case nil: return nil
        }
    }
}

/// Time, GPU-hours and cost of a whole training run.
public struct TrainingTime: Sendable {
    public let steps: Int
    /// Steps × step time, and the wall time once failures take their share (÷ goodput).
    public let computeSeconds: Double, wallSeconds: Double
    public let goodput: Double
    public let gpuHours: Double
    public let cost: Double?

    /// nil when the budget names no run length.
    public init?(_ s: Scenario, step: StepReport, budget: TrainingBudget, goodput: Double?) {
        guard let steps = budget.steps(tokensPerStep: s.batch * s.sequence) else { return nil }
        self.steps = steps
        computeSeconds = Double(steps) * step.stepTime.seconds
        self.goodput = goodput ?? 1
        wallSeconds = self.goodput > 0 ? computeSeconds / self.goodput : .infinity
        let hours = Double(s.gpus) * wallSeconds / 3600
        gpuHours = hours
        cost = budget.gpuHour.map { $0 * hours }
    }
}

/// What a simulated step means beyond itself: the fabric it ran on, its power and energy,
/// and — with a budget — the whole run's time, cost and emissions.
public struct RunEstimate: Sendable {
    public let fabric: FabricSizing
    /// The fabric's capital cost, when the scenario prices switches (and cables).
    public let fabricCost: Double?
    public let energy: EnergyReport
    public let time: TrainingTime?
    /// Energy of one step and of one token at the step's power.
    public let perStep: EnergyReport.Totals, perToken: EnergyReport.Totals
    /// The whole run's, when the scenario gives a budget (power drawn for the whole wall time,
    /// failures' rework and restarts included).
    public let run: EnergyReport.Totals?

    /// `goodput`: the reliability run's, when the caller already has it; otherwise the
    /// scenario's `reliability:` section (if any) is simulated here.
    public init(_ s: Scenario, _ r: StepReport, goodput: Double? = nil) {
        let sizing = FabricSizing(s.fabric)
        fabric = sizing
        fabricCost = s.budget?.switchPrice.map { Double(sizing.switches) * $0 + Double(sizing.cables) * (s.budget?.cablePrice ?? 0) }
        let power = EnergyModel.step(s, r, switches: sizing.switches, settings: s.energy ?? EnergySettings())
        energy = power
        let step = r.stepTime.seconds
        perStep = power.over(step)
        perToken = power.over(step / Double(s.batch * s.sequence))
        let goodput = goodput ?? s.reliability.map { s.reliabilityModel($0, step: r).simulate().goodput }
        let time = s.budget.flatMap { TrainingTime(s, step: r, budget: $0, goodput: goodput) }
        self.time = time
        run = time.map { power.over($0.wallSeconds) }
    }
}
