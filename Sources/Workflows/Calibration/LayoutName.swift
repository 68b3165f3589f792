
import Parallelism

/// Layouts written compactly, as `dp2pp2`, `tp2`, `dp1`: degrees in any order, unnamed ones 1.
/// Pipelines get 2·pp micro-batches, as `fleet train` does.
public enum LayoutName {
    public static func parse(_ text: String) throws -> ParallelLayout {
        var degrees = ["dp": 1, "tp": 1, "pp": 1]
        var rest = Substring(text.lowercased())
        guard !rest.isEmpty else { throw FleetError("an empty layout name; write e.g. dp2pp2") }
        while !rest.isEmpty {
            let key = String(rest.prefix(2))
            rest = rest.dropFirst(2)
            let digits = rest.prefix { $0.isNumber }
            rest = rest.dropFirst(digits.count)
            guard degrees[key] != nil, let value = Int(digits), value >= 1 else {
                throw FleetError("cannot read layout '\(text)': write degrees like dp2pp2, tp2 or dp1 (dp, tp, pp followed by a number)")
            }
            degrees[key] = value
        }
        let pp = degrees["pp"]!
        return ParallelLayout(dp: degrees["dp"]!, tp: degrees["tp"]!, pp: pp, microbatches: pp > 1 ? 2 * pp : 1)
    }

    public static func name(_ layout: ParallelLayout) -> String {
        var parts: [String] = []
        if layout.dp > 1 || (layout.tp == 1 && layout.pp == 1) { parts.append("dp\(layout.dp)") }
        if layout.tp > 1 { parts.append("tp\(layout.tp)") }
        if layout.pp > 1 { parts.append("pp\(layout.pp)") }
        return parts.joined()
    }

    /// The layouts `fleet compare` runs by default.
    public static let standard = ["dp1", "dp2", "dp4", "tp2", "pp2", "dp2pp2", "tp2pp2", "dp2tp2"]
}
