import Foundation

/// One JSON object on one line, keys in the order given: fleet's run logs and `--json` output.
/// (Hand-written rather than JSONSerialization so the key order is the caller's.)
public enum JSONLine {
    public static func encode(_ fields: [(String, Any)]) -> String {
        "{" + fields.map { key, value in "\"\(key)\":\(Self.value(value))" }.joined(separator: ",") + "}"
    }

    private static func value(_ value: Any) -> String {
        switch value {
        case let s as String: return quoted(s)
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return "\(i)"
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let f as Float: return f.isFinite ? "\(f)" : "null"
        case let a as [Double]: return "[" + a.map { Self.value($0) }.joined(separator: ",") + "]"
        case let a as [Int]: return "[" + a.map { "\($0)" }.joined(separator: ",") + "]"
        case let a as [String]: return "[" + a.map { Self.value($0) }.joined(separator: ",") + "]"
        case let rows as [[Int]]: return "[" + rows.map { Self.value($0) }.joined(separator: ",") + "]"
        case let objects as [[(String, Any)]]: return "[" + objects.map { encode($0) }.joined(separator: ",") + "]"
        case let object as JSONObject: return encode(object.fields)
        case let raw as JSONRaw: return raw.text
        case let raws as [JSONRaw]: return "[" + raws.map(\.text).joined(separator: ",") + "]"
        default: return quoted("\(value)")
        }
    }

    /// A JSON string: quotes, backslashes and every control character escaped (a path or a
    /// message may hold any of them).
    private static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// A nested JSON object inside a `JSONLine`, keys in the order given.
public struct JSONObject {
    public let fields: [(String, Any)]
    public init(_ fields: [(String, Any)]) { self.fields = fields }
}

/// JSON text already encoded (a sweep point formatted where it was simulated), placed as is.
public struct JSONRaw {
    public let text: String
    public init(_ text: String) { self.text = text }
}
