import Engine
import Foundation

/// The fabric, energy and whole-run figures of a simulated step as `fleet simulate` prints
/// them (text) and records them (`--json`: `fabric`, `energy`, `train`).
public enum RunEstimateText {
    public static func lines(_ s: Scenario, _ e: RunEstimate) -> [String] {
        let f = e.fabric
        var lines = ["fabric: \(f.topology)\(f.radix.map { " radix \($0)" } ?? ""), \(f.endpoints.formatted()) endpoints; "
            + f.tiers.map { "\($0.switches.formatted()) \($0.name)" }.joined(separator: " + ") + " switches, \(f.cables.formatted()) cables; "
            + "bisection \(Units.bandwidth(f.bisection))" + (f.oversubscription > 1.001 ? String(format: ", %.2g:1 oversubscribed at the leaves", f.oversubscription) : ", non-blocking")]
        let p = e.energy, settings = p.settings
        lines.append(String(format: "power: %.0f W per GPU (%.0f %% busy, idle %.0f W, TDP %.0f W); IT %@, facility %@ at PUE %.2f",
                            p.devicePower, p.utilisation * 100, p.idlePower, s.device.watts,
                            watts(p.itPower), watts(p.itPower * settings.pue), settings.pue))
        lines.append(String(format: "energy: %.3g kWh per step, %.3g J per token (facility)", e.perStep.facilityKWh, e.perToken.facilityKWh * 3.6e6)
                     + (settings.gridIntensity > 0 ? String(format: "; %.3g g CO2e per 1,000 tokens at %.0f g/kWh%@", e.perToken.carbonKg * 1e6,
                                                           settings.gridIntensity, settings.gridName.map { " (\($0))" } ?? "") : ""))
        if let t = e.time, let run = e.run {
            var line = "training run: \(t.steps.formatted()) steps, " + Units.duration(t.wallSeconds)
                + (t.goodput < 1 ? String(format: " at goodput %.3f (%@ of steps)", t.goodput, Units.duration(t.computeSeconds)) : "")
                + String(format: ", %@ GPU-hours", Int(t.gpuHours.rounded()).formatted())
            if let cost = t.cost { line += ", cost \(money(cost))" }
            lines.append(line)
            var impact = String(format: "run energy: %@ facility (%@ IT)", kwh(run.facilityKWh), kwh(run.itKWh))
            if settings.gridIntensity > 0 { impact += String(format: ", %@ CO2e", tonnes(run.carbonKg)) }
            if settings.wue > 0 { impact += String(format: ", %@ of water", litres(run.waterL)) }
            if let embodied = run.embodiedKg { impact += ", embodied \(tonnes(embodied)) CO2e (devices' lifetime share)" }
            lines.append(impact)
        }
        if let cost = e.fabricCost { lines.append("fabric cost: \(money(cost)) (\(f.switches.formatted()) switches, \(f.cables.formatted()) cables)") }
        return lines
    }

    /// `fabric`, `energy` and (with a budget) `train` objects for the JSON record.
    public static func record(_ s: Scenario, _ e: RunEstimate) -> [(String, Any)] {
        let f = e.fabric, p = e.energy
        var fields: [(String, Any)] = [
            ("fabric", JSONObject([("topology", f.topology), ("radix", f.radix ?? 0), ("tiers", f.tiers.count), ("hosts", f.endpoints),
                                   ("switches", f.switches), ("cables", f.cables), ("bisection_GBps", f.bisection / 1e9),
                                   ("oversubscription", f.oversubscription)] + (e.fabricCost.map { [("cost", $0)] as [(String, Any)] } ?? []) + [
                                   ("per_tier", f.tiers.map { [("name", $0.name), ("switches", $0.switches), ("cables", $0.cables)] as [(String, Any)] })])),
        ]
        var energy: [(String, Any)] = [("utilisation", p.utilisation), ("device_w", p.devicePower), ("it_w", p.itPower), ("pue", p.settings.pue),
                                       ("grid_gco2_per_kwh", p.settings.gridIntensity), ("wue_l_per_kwh", p.settings.wue),
                                       ("step_it_kwh", e.perStep.itKWh), ("step_facility_kwh", e.perStep.facilityKWh),
                                       ("token_facility_j", e.perToken.facilityKWh * 3.6e6), ("token_carbon_g", e.perToken.carbonKg * 1000)]
        if let run = e.run {
            energy += [("it_kwh", run.itKWh), ("facility_kwh", run.facilityKWh), ("carbon_kg", run.carbonKg), ("water_l", run.waterL)]
            if let embodied = run.embodiedKg { energy.append(("embodied_carbon_kg", embodied)) }
        }
        fields.append(("energy", JSONObject(energy)))
        if let t = e.time {
            var train: [(String, Any)] = [("steps", t.steps), ("time_to_train_s", t.wallSeconds), ("compute_s", t.computeSeconds),
                                          ("goodput", t.goodput), ("gpu_hours", t.gpuHours)]
            if let cost = t.cost { train.append(("cost", cost)) }
            fields.append(("train", JSONObject(train)))
        }
        return fields
    }

    static func watts(_ w: Double) -> String { w >= 1e6 ? String(format: "%.2f MW", w / 1e6) : w >= 1e3 ? String(format: "%.1f kW", w / 1e3) : String(format: "%.0f W", w) }
    static func kwh(_ x: Double) -> String { x >= 1e6 ? String(format: "%.2f GWh", x / 1e6) : x >= 1e3 ? String(format: "%.1f MWh", x / 1e3) : String(format: "%.1f kWh", x) }
    static func tonnes(_ kg: Double) -> String { kg >= 1000 ? String(format: "%.1f t", kg / 1000) : String(format: "%.1f kg", kg) }
    static func litres(_ l: Double) -> String { l >= 1e6 ? String(format: "%.2f ML", l / 1e6) : l >= 1e3 ? String(format: "%.1f m³", l / 1e3) : String(format: "%.0f L", l) }
    static func money(_ x: Double) -> String { "$" + Int(x.rounded()).formatted() }
}

