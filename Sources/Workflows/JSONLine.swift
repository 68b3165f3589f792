import Foundation

/// One JSON object on one line, keys in the order given: fleet's run logs and `--json` output.
/// (Hand-written rather than JSONSerialization so the key order is the caller's.)
public enum JSONLine {
    public static func encode(_ fields: [(String, Any)]) -> String {
        "{" + fields.map { key, value in "\"\(key)\":\(Self.value(value))" }.joined(separator: ",") + "}"
    }

    private static func value(_ value: Any) -> String {
        switch value {
        case let s as String:
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\"\(escaped)\""
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return "\(i)"
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let f as Float: return f.isFinite ? "\(f)" : "null"
        case let a as [Double]: return "[" + a.map { Self.value($0) }.joined(separator: ",") + "]"
        case let a as [String]: return "[" + a.map { Self.value($0) }.joined(separator: ",") + "]"
        case let objects as [[(String, Any)]]: return "[" + objects.map { encode($0) }.joined(separator: ",") + "]"
        default: return "\"\(value)\""
        }
    }
}
