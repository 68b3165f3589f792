/// A scenario file that cannot be simulated: where, and what was expected.
public enum ScenarioError: Error, CustomStringConvertible, Equatable {
    case invalid(path: String, line: Int, column: Int, reason: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(path, line, column, reason): return "\(path):\(line):\(column): \(reason)"
        case let .unreadable(path, reason): return "cannot read scenario \(path): \(reason)"
        }
    }
}
