
import Parallelism

/// Layouts written compactly, as `dp2pp2`, `tp2`, `dp1`: degrees in any order, unnamed ones 1;
/// `v2` adds the interleaved schedule with two chunks per stage (`pp2v2`). Pipelines get
/// 2·pp micro-batches, as `fleet train` does.
public enum LayoutName {
    public static func parse(_ text: String) throws -> ParallelLayout {
        var degrees = ["dp": 1, "tp": 1, "pp": 1, "v": 1]
        var rest = Substring(text.lowercased())
        guard !rest.isEmpty else { throw FleetError("an empty layout name; write e.g. dp2pp2") }
        while !rest.isEmpty {
            let key = rest.hasPrefix("v") ? "v" : String(rest.prefix(2))
            rest = rest.dropFirst(key.count)
            let digits = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(digits.count)
            guard degrees[key] != nil, let value = Int(digits), value >= 1 else {
                throw FleetError("cannot read layout '\(text)': write degrees like dp2pp2, tp2, dp1 or pp2v2 (dp, tp, pp followed by a number; v: interleaved chunks per stage)")
            }
            degrees[key] = value
        }
        let pp = degrees["pp"]!, v = degrees["v"]!
        return ParallelLayout(dp: degrees["dp"]!, tp: degrees["tp"]!, pp: pp, microbatches: pp > 1 ? 2 * pp : 1,
                              schedule: v > 1 ? .interleaved : .oneFOneB, virtualStages: v)
    }

    public static func name(_ layout: ParallelLayout) -> String {
        var parts: [String] = []
        if layout.dp > 1 || (layout.tp == 1 && layout.pp == 1) { parts.append("dp\(layout.dp)") }
        if layout.tp > 1 { parts.append("tp\(layout.tp)") }
        if layout.pp > 1 { parts.append("pp\(layout.pp)") }
        if layout.schedule == .interleaved { parts.append("v\(layout.virtualStages)") }
        return parts.joined()
    }

    /// The `fleet train` flags that give `layout`'s schedule (none for the default 1f1b).
    public static func scheduleArguments(_ layout: ParallelLayout) -> [String] {
        switch layout.schedule {
        case .oneFOneB: return []
        case .gpipe: return ["--schedule", "gpipe"]
        case .interleaved: return ["--schedule", "interleaved", "--virtual-stages", "\(layout.virtualStages)"]
        }
    }

    /// The layouts `fleet compare` runs by default.
    public static let standard = ["dp1", "dp2", "dp4", "tp2", "pp2", "dp2pp2", "tp2pp2", "dp2tp2"]
}
