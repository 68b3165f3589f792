import Foundation
import Yams

/// Reading single values of a scenario: mappings with their allowed keys, numbers with their
/// domains, quantities with units — each failure a `ScenarioError` at the value's line and column.
extension ScenarioReader {
    struct Mapping {
        let node: Node
        let pairs: [(String, Node)]
        subscript(key: String) -> Node? { pairs.first { $0.0 == key }?.1 }
    }

    func mapping(_ node: Node, _ context: String, allowed: [String]) throws -> Mapping {
        guard let map = node.mapping else { throw fail(node, "\(context) must be a mapping of key: value lines") }
        var pairs: [(String, Node)] = []
        for (key, value) in map {
            guard let name = key.string, allowed.contains(name) else {
                let nearest = key.string.flatMap { typed in allowed.min { Self.distance(typed, $0) < Self.distance(typed, $1) } }
                    .flatMap { Self.distance(key.string ?? "", $0) <= max(2, $0.count / 3) ? "did you mean '\($0)'? " : nil } ?? ""
                throw fail(key, "unknown key '\(key.string ?? "?")' in \(context); \(nearest)expected one of \(allowed.joined(separator: ", "))")
            }
            pairs.append((name, value))
        }
        return Mapping(node: node, pairs: pairs)
    }

    /// Edit distance (insertions, deletions, substitutions) between two keys, for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }

    func required(_ mapping: Mapping, _ key: String, _ context: String) throws -> Node {
        guard let node = mapping[key] else {
            throw fail(mapping.node, "\(context) is missing '\(key)'")
        }
        return node
    }

    func int(_ node: Node, _ name: String, minimum: Int) throws -> Int {
        guard let value = node.int, value >= minimum else { throw fail(node, "\(name) must be a whole number ≥ \(minimum) (got '\(node.string ?? "?")')") }
        return value
    }

    /// A whole number in minimum…maximum (counts that size a machine: ports, tiers, dimensions).
    func int(_ node: Node, _ name: String, minimum: Int, maximum: Int) throws -> Int {
        guard let value = node.int, (minimum...maximum).contains(value) else {
            throw fail(node, "\(name) must be a whole number from \(minimum) to \(maximum.formatted()) (got '\(node.string ?? "?")')")
        }
        return value
    }

    /// A yes-or-no value; `meaning` spells out what the two answers say when that helps.
    func flag(_ node: Node, _ name: String, meaning: String = "true or false") throws -> Bool {
        guard let value = node.bool else { throw fail(node, "\(name) must be \(meaning)") }
        return value
    }

    func number(_ node: Node, _ name: String) throws -> Double {
        guard let value = node.float, value.isFinite, value > 0 else { throw fail(node, "\(name) must be a positive number (got '\(node.string ?? "?")')") }
        return value
    }

    func choice<T: RawRepresentable>(_ node: Node, _ name: String, _ options: [T]) throws -> T where T.RawValue == String {
        guard let value = node.string.flatMap(T.init(rawValue:)), options.contains(where: { $0.rawValue == value.rawValue }) else {
            throw fail(node, "\(name) must be one of \(options.map(\.rawValue).joined(separator: ", ")) (got '\(node.string ?? "?")')")
        }
        return value
    }

    func link(_ node: Node, _ name: String) throws -> Link {
        let map = try mapping(node, name, allowed: ["bandwidth", "latency"])
        return Link(bandwidth: Bandwidth(bytesPerSecond: try quantity(required(map, "bandwidth", name), name + ".bandwidth", Units.bandwidth, positive: true)),
                    latency: SimTime(seconds: try quantity(required(map, "latency", name), name + ".latency", Units.time)))
    }

    /// A number with a unit, such as `400 Gb/s`, `1.5 us` or `25 MiB`.
    /// With `positive`, zero is refused too: a rate, size or duration of zero would divide by
    /// zero downstream (a free link, a bucket loop that never ends), never mean anything.
    func quantity(_ node: Node, _ name: String, _ units: [String: Double], positive: Bool = false) throws -> Double {
        let text = (node.string ?? "").trimmingCharacters(in: .whitespaces)
        let digits = text.prefix { "0123456789.eE+-".contains($0) }
        let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value.isFinite, let scale = units[unit] else {
            let examples = units.keys.sorted().prefix(6).joined(separator: ", ")
            throw fail(node, "\(name) must be a number with a unit (\(examples), …), got '\(text)'")
        }
        guard value >= 0 else { throw fail(node, "\(name) must not be negative (got '\(text)')") }
        if positive && value == 0 { throw fail(node, "\(name) must be greater than zero (got '\(text)')") }
        // Beyond 10¹⁸ base units (bytes, bytes/s, seconds) no quantity describes a machine, and sizes stop fitting their integers.
        guard value * scale <= 1e18 else { throw fail(node, "\(name) is out of range (got '\(text)'; at most 10^18 in base units: bytes, bytes/s or seconds)") }
        return value * scale
    }

    func fail(_ node: Node?, _ reason: String) -> ScenarioError {
        let mark = node?.mark
        return .invalid(path: path, line: mark?.line ?? 1, column: mark?.column ?? 1, reason: reason)
    }

    func syntax(_ error: YamlError) -> ScenarioError {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return .invalid(path: path, line: mark.line, column: mark.column, reason: "YAML syntax: \(problem)")
        default:
            return .invalid(path: path, line: 1, column: 1, reason: "YAML: \(error)")
        }
    }
}

/// Unit suffixes the scenario format accepts.
enum Units {
    static let bandwidth: [String: Double] = ["B/s": 1, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9, "TB/s": 1e12,
                                              "Kb/s": 1e3 / 8, "Mb/s": 1e6 / 8, "Gb/s": 1e9 / 8, "Tb/s": 1e12 / 8]
    static let flops: [String: Double] = ["FLOP/s": 1, "GFLOP/s": 1e9, "TFLOP/s": 1e12, "PFLOP/s": 1e15]
    static let time: [String: Double] = ["s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60, "h": 3600, "d": 86400]
    static let bytes: [String: Double] = ["B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
                                          "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824, "TiB": 1_099_511_627_776]
}
