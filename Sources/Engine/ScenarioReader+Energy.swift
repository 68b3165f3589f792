import Foundation
import Yams

/// The `energy:` and `cost:` sections and the training budget (`workload.tokens` or `workload.steps`).
extension ScenarioReader {
    func energy(_ node: Node, device: Device) throws -> EnergySettings {
        let map = try mapping(node, "energy", allowed: ["device_idle", "node_overhead", "switch_power", "pue", "grid", "wue", "embodied_per_device", "lifetime"])
        var e = EnergySettings()
        if let n = map["device_idle"] {
            let idle = try quantity(n, "energy.device_idle", EnergyUnits.power)
            guard idle <= device.watts else { throw fail(n, "energy.device_idle (\(idle) W) cannot exceed the device's TDP (\(device.watts) W)") }
            e.deviceIdle = idle
        }
        if let n = map["node_overhead"] { e.nodeOverhead = try quantity(n, "energy.node_overhead", EnergyUnits.power) }
        if let n = map["switch_power"] { e.switchPower = try quantity(n, "energy.switch_power", EnergyUnits.power) }
        if let n = map["pue"] {
            e.pue = try number(n, "energy.pue")
            guard (1...5).contains(e.pue) else { throw fail(n, "energy.pue is facility ÷ IT energy: at least 1 (a perfect site), at most 5 (got '\(n.string ?? "?")')") }
        }
        if let n = map["grid"] {
            if let name = n.string, let preset = EnergySettings.grids[name.lowercased()] {
                e.gridIntensity = preset
                e.gridName = name.lowercased()
            } else if let text = n.string, text.first?.isNumber == true {
                e.gridIntensity = try quantity(n, "energy.grid", EnergyUnits.intensity)
            } else {
                throw fail(n, "energy.grid must be a carbon intensity such as 400 g/kWh or one of \(EnergySettings.grids.keys.sorted().joined(separator: ", ")) (got '\(n.string ?? "?")')")
            }
        }
        if let n = map["wue"] { e.wue = try quantity(n, "energy.wue", EnergyUnits.water) }
        if let n = map["embodied_per_device"] { e.embodiedPerDevice = try quantity(n, "energy.embodied_per_device", EnergyUnits.mass) }
        if let n = map["lifetime"] { e.lifetime = try quantity(n, "energy.lifetime", EnergyUnits.lifetime, positive: true) }
        return e
    }

    func budget(_ workload: Mapping, cost: Node?) throws -> TrainingBudget? {
        let tokens = workload["tokens"], steps = workload["steps"]
        if let tokens, let steps { throw fail(steps, "workload takes tokens or steps, not both (tokens at line \(tokens.mark?.line ?? 0))") }
        var budget: TrainingBudget?
        if let tokens {
            guard let value = tokens.float ?? Double((tokens.string ?? "").replacingOccurrences(of: "_", with: "")), value.isFinite, value >= 1, value <= 1e18 else {
                throw fail(tokens, "workload.tokens is a token budget between 1 and 10^18, such as 15e12 (got '\(tokens.string ?? "?")')")
            }
            budget = TrainingBudget(amount: .tokens(value))
        } else if let steps {
            budget = TrainingBudget(amount: .steps(try int(steps, "workload.steps", minimum: 1)))
        }
        guard let cost else { return budget }
        let map = try mapping(cost, "cost", allowed: ["gpu_hour", "switch", "cable"])
        if budget == nil, map["gpu_hour"] != nil {
            throw fail(cost, "cost.gpu_hour prices a whole run: give workload.tokens (a token budget) or workload.steps")
        }
        var priced = budget ?? TrainingBudget(amount: nil)
        if let n = map["gpu_hour"] { priced.gpuHour = try price(n, "cost.gpu_hour") }
        if let n = map["switch"] { priced.switchPrice = try price(n, "cost.switch") }
        if let n = map["cable"] { priced.cablePrice = try price(n, "cost.cable") }
        return priced
    }

    /// A price in any currency (a plain number, or with a leading $ or trailing USD/EUR).
    private func price(_ node: Node, _ name: String) throws -> Double {
        let text = (node.string ?? "").replacingOccurrences(of: "$", with: "").replacingOccurrences(of: "USD", with: "")
            .replacingOccurrences(of: "EUR", with: "").trimmingCharacters(in: .whitespaces)
        guard let value = Double(text), value.isFinite, value >= 0, value <= 1e12 else {
            throw fail(node, "\(name) must be a price ≥ 0 such as 2.50 (per unit, in your currency; got '\(node.string ?? "?")')")
        }
        return value
    }
}

enum EnergyUnits {
    static let power: [String: Double] = ["W": 1, "kW": 1e3, "MW": 1e6]
    static let intensity: [String: Double] = ["g/kWh": 1, "kg/kWh": 1000, "gCO2e/kWh": 1, "kgCO2e/kWh": 1000]
    static let water: [String: Double] = ["L/kWh": 1, "l/kWh": 1]
    static let mass: [String: Double] = ["g": 1e-3, "kg": 1, "t": 1000]
    static let lifetime: [String: Double] = ["d": 86400, "y": 365 * 86400, "h": 3600]
}
