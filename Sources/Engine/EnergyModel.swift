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
    /// A device's idle draw, and its average over the step: idle + (TDP − idle) × utilisation, watts.
    public let idlePower: Double, devicePower: Double
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
    /// The step's power from its simulated busy time (not TDP × time), with the fabric's `switches`.
    public static func step(_ s: Scenario, _ r: StepReport, switches: Int, settings: EnergySettings) -> EnergyReport {
        let step = r.stepTime.seconds
        let utilisation = step > 0 ? min(1, r.breakdown.compute.seconds / step) : 0
        let idle = min(settings.deviceIdle ?? 0.2 * s.device.watts, s.device.watts)
        let device = idle + (s.device.watts - idle) * utilisation
        let it = Double(s.gpus) * device + Double(s.nodes) * settings.nodeOverhead + Double(switches) * settings.switchPower
        return EnergyReport(utilisation: utilisation, idlePower: idle, devicePower: device, itPower: it, settings: settings, devices: s.gpus)
    }
}
