
import Parallelism

/// Layouts written compactly, as `dp2pp2`, `tp2`, `dp1`: degrees in any order, unnamed ones 1;
/// then, as `fleet train` takes them, `v2` (the interleaved schedule, two chunks per stage:
/// `pp2v2`), `gpipe`, `m8` (micro-batches; pipelines get 2·pp by default, as `fleet train`
/// gives them), `z1` (ZeRO stage) and `sp` (sequence parallel): `dp2pp2m8gpipe`, `dp2z1`, `tp2sp`;
/// `ep2` splits a mixture of experts' experts over two of the dp ranks: `dp4ep2`; `cp2` splits
/// each sequence's positions over two of them (ring attention): `dp2cp2`, and `lb` balances them (`dp2cp2lb`).
public enum LayoutName {
    public static func parse(_ text: String) throws -> ParallelLayout {
        var values = ["dp": 1, "tp": 1, "pp": 1, "ep": 1, "cp": 1, "v": 1, "z": 0]
        var microbatches: Int?, gpipe = false, sequenceParallel = false, balanced = false
        var rest = Substring(text.lowercased())
        guard !rest.isEmpty else { throw FleetError("an empty layout name; write e.g. dp2pp2") }
        func unreadable() -> FleetError {
            FleetError("cannot read layout '\(text)': write degrees like dp2pp2, tp2, dp2ep2, dp2cp2 or dp1 (dp, tp, pp, ep, cp followed by a number), "
                       + "then optionally v2 (interleaved chunks per stage), gpipe, m8 (micro-batches), z1 (ZeRO stage), sp (sequence parallel) or lb (balanced context chunks)")
        }
        while !rest.isEmpty {
            if rest.hasPrefix("gpipe") { gpipe = true; rest = rest.dropFirst(5); continue }
            if rest.hasPrefix("sp") { sequenceParallel = true; rest = rest.dropFirst(2); continue }
            if rest.hasPrefix("lb") { balanced = true; rest = rest.dropFirst(2); continue }
            let key = ["dp", "tp", "pp", "ep", "cp"].first { rest.hasPrefix($0) } ?? String(rest.prefix(1))
            guard ["dp", "tp", "pp", "ep", "cp", "v", "m", "z"].contains(key) else { throw unreadable() }
            rest = rest.dropFirst(key.count)
            let digits = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(digits.count)
            guard let value = Int(digits), value >= (key == "z" ? 0 : 1) else { throw unreadable() }
            if key == "m" { microbatches = value } else { values[key] = value }
        }
        let pp = values["pp"]!, v = values["v"]!
        if gpipe && v > 1 { throw FleetError("layout '\(text)' asks for both gpipe and interleaving (v\(v)); choose one") }
        var layout = ParallelLayout(dp: values["dp"]!, tp: values["tp"]!, pp: pp, microbatches: microbatches ?? ParallelLayout.defaultMicrobatches(pp: pp),
                                    schedule: v > 1 ? .interleaved : gpipe ? .gpipe : .oneFOneB, virtualStages: v, zeroStage: values["z"]!,
                                    sequenceParallel: sequenceParallel, ep: values["ep"]!, cp: values["cp"]!)
        layout.contextBalanced = balanced
        return layout
    }

    public static func name(_ layout: ParallelLayout) -> String {
        var parts: [String] = []
        if layout.dp > 1 || (layout.tp == 1 && layout.pp == 1) { parts.append("dp\(layout.dp)") }
        if layout.tp > 1 { parts.append("tp\(layout.tp)") }
        if layout.pp > 1 { parts.append("pp\(layout.pp)") }
        if layout.ep > 1 { parts.append("ep\(layout.ep)") }
        if layout.cp > 1 { parts.append("cp\(layout.cp)") }
        if layout.schedule == .interleaved { parts.append("v\(layout.virtualStages)") }
        if layout.microbatches != ParallelLayout.defaultMicrobatches(pp: layout.pp) { parts.append("m\(layout.microbatches)") }
        if layout.schedule == .gpipe { parts.append("gpipe") }
        if layout.zeroStage > 0 { parts.append("z\(layout.zeroStage)") }
        if layout.sequenceParallel { parts.append("sp") }
        if layout.cp > 1 && layout.contextBalanced { parts.append("lb") }
        return parts.joined()
    }

    /// The `fleet train` flags that give `layout`: its degrees and micro-batches, then its
    /// schedule, ZeRO stage and sequence parallelism where they are not the defaults.
    public static func trainArguments(_ layout: ParallelLayout) -> [String] {
        var arguments = ["--dp", "\(layout.dp)", "--tp", "\(layout.tp)", "--pp", "\(layout.pp)", "--microbatches", "\(layout.microbatches)"]
        switch layout.schedule {
        case .oneFOneB: break
        case .gpipe: arguments += ["--schedule", "gpipe"]
        case .interleaved: arguments += ["--schedule", "interleaved", "--virtual-stages", "\(layout.virtualStages)"]
        }
        if layout.zeroStage > 0 { arguments += ["--zero", "\(layout.zeroStage)"] }
        if layout.sequenceParallel { arguments.append("--sequence-parallel") }
        if layout.ep > 1 { arguments += ["--ep", "\(layout.ep)"] }
        if layout.cp > 1 { arguments += ["--cp", "\(layout.cp)"] + (layout.contextBalanced ? ["--cp-balance"] : []) }
        return arguments
    }

    /// The layouts `fleet compare` runs by default.
    public static let standard = ["dp1", "dp2", "dp4", "tp2", "pp2", "dp2pp2", "tp2pp2", "dp2tp2"]
}
