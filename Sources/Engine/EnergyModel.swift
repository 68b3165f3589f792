import Foundation

/// A scenario's `energy:` section: what the devices draw idle, what every node and switch
/// adds, the site's PUE and WUE, the grid's carbon intensity, and embodied carbon.
public struct EnergySettings: Sendable, Hashable {
    /// A device's draw when idle, watts (nil: 20 % of its TDP).
    public var deviceIdle: Double?
    /// Per node beyond its GPUs (host CPUs, memory, NICs, fans), and per fabric switch, watts.
    public var nodeOverhead = 0.0, switchPower = 0.0
    /// Facility energy ÷ IT energy.
    public var pue = 1.0
    /// Grid carbon intensity, gCO2e per kWh, and the preset it came from.
    public var gridIntensity = 0.0
    public var gridName: String?
    /// Water per kWh of IT energy, litres (water usage effectiveness).
    public var wue = 0.0
    /// Embodied carbon of one device, kg CO2e, amortised over `lifetime` seconds.
    public var embodiedPerDevice: Double?
    public var lifetime = 5 * 365 * 86400.0

    public init() {}

    /// Named grids (gCO2e/kWh, yearly averages of the kind published by Ember and the IEA):
    /// starting points, not measurements of any one hour.
    public static let grids: [String: Double] = [
        "world": 480, "us": 370, "eu": 250, "china": 560, "india": 710, "france": 55, "sweden": 30, "norway": 30,
        "germany": 380, "uk": 210, "quebec": 2, "poland": 660, "texas": 390, "california": 210, "virginia": 290,
    ]
}

/// Power, energy, carbon and water of a simulated step, and of a run of any length.
public struct EnergyReport: Sendable {
    /// Share of the step a device computes (the slowest stage's compute ÷ step time).
    public let utilisation: Double
    /// One device's average draw over the step: idle + (TDP − idle) × utilisation, watts.
    public let devicePower: Double
    /// Devices + node overheads + switches, watts.
    public let itPower: Double
    public let settings: EnergySettings
    public let devices: Int

    /// Energy and its consequences over `seconds` of running at this power.
    public struct Totals: Sendable {
        public let itKWh, facilityKWh, carbonKg, waterL: Double
        /// Embodied carbon of the devices for the share of their lifetime this run used (nil without a figure).
        public let embodiedKg: Double?
    }

    public func over(_ seconds: Double) -> Totals {
        let it = itPower * seconds / 3.6e6
        let facility = it * settings.pue
        return Totals(itKWh: it, facilityKWh: facility, carbonKg: facility * settings.gridIntensity / 1000, waterL: it * settings.wue,
                      embodiedKg: settings.embodiedPerDevice.map { $0 * Double(devices) * seconds / settings.lifetime })
    }
}

public enum EnergyModel {
    /// The step's power from its simulated busy time (not TDP × time), with the fabric's switches.
    public static func step(_ s: Scenario, _ r: StepReport, settings: EnergySettings) -> EnergyReport {
        let step = r.stepTime.seconds
        let utilisation = step > 0 ? min(1, r.breakdown.compute.seconds / step) : 0
        let idle = min(settings.deviceIdle ?? 0.2 * s.device.watts, s.device.watts)
        let device = idle + (s.device.watts - idle) * utilisation
        let switches = Double(FabricSizing(s.fabric).switches)
        let it = Double(s.gpus) * device + Double(s.nodes) * settings.nodeOverhead + switches * settings.switchPower
        return EnergyReport(utilisation: utilisation, devicePower: device, itPower: it, settings: settings, devices: s.gpus)
    }
}

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
        let power = EnergyModel.step(s, r, settings: s.energy ?? EnergySettings())
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
