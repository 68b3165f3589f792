import Foundation

/// The hosts self-launched workers run on (`--hosts A:2,B:2` or an OpenMPI-style hostfile),
/// and how fleet reaches them: a launch agent such as `ssh` run as `AGENT HOST 'COMMAND'`.
public struct LaunchHosts: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        public let address: String
        public let slots: Int
    }

    public let hosts: [Host]

    /// `A:2,B:2` (a host without `:N` has one slot).
    public init(list: String) throws {
        hosts = try list.split(separator: ",", omittingEmptySubsequences: false).map { entry in
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            let address = parts.first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            guard !address.isEmpty, parts.count <= 2 else { throw Self.invalid("'\(entry)' is not HOST or HOST:SLOTS") }
            guard parts.count == 1 || Int(parts[1]).map({ $0 >= 1 }) == true else {
                throw Self.invalid("'\(entry)': the slots after ':' must be a whole number ≥ 1")
            }
            return Host(address: address, slots: parts.count == 2 ? Int(parts[1])! : 1)
        }
    }

    /// OpenMPI's hostfile format: one `HOST [slots=N]` per line, `#` comments.
    public init(hostfile path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Self.invalid("cannot read the hostfile \(path)") }
        var hosts: [Host] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            guard !line.isEmpty else { continue }
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            var slots = 1
            for word in words.dropFirst() {
                guard word.hasPrefix("slots="), let n = Int(word.dropFirst("slots=".count)), n >= 1 else {
                    throw Self.invalid("\(path):\(number + 1): '\(word)' is not slots=N (N ≥ 1)")
                }
                slots = n
            }
            hosts.append(Host(address: String(words[0]), slots: slots))
        }
        guard !hosts.isEmpty else { throw Self.invalid("the hostfile \(path) names no host") }
        self.hosts = hosts
    }

    /// The host of each of `ranks` ranks, filling each host's slots in order.
    public func placement(ranks: Int) throws -> [String] {
        let slots = hosts.flatMap { Array(repeating: $0.address, count: $0.slots) }
        guard slots.count >= ranks else {
            throw Self.invalid("\(ranks) ranks need \(ranks) slots; the hosts give \(slots.count) (\(hosts.map { "\($0.address):\($0.slots)" }.joined(separator: ","))): add slots or hosts")
        }
        return Array(slots.prefix(ranks))
    }

    /// The launch agent: FLEET_LAUNCH_AGENT split on spaces (e.g. `ssh -o BatchMode=yes`), `ssh` by default.
    public static func agent(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        let words = (environment["FLEET_LAUNCH_AGENT"] ?? "ssh").split(separator: " ").map(String.init)
        return words.isEmpty ? ["ssh"] : words
    }

    /// `arguments` as one line for a remote shell, each word quoted.
    public static func shellLine(_ arguments: [String]) -> String {
        arguments.map { word in
            word.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=,@%+".contains($0) } && !word.isEmpty
                ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    static func invalid(_ reason: String) -> LocalLauncher.LaunchError { .cannotStart(reason) }
}
