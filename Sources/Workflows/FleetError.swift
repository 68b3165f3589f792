/// A user-facing failure: the message says what is wrong and what to do.
public struct FleetError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
