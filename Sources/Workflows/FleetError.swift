/// A user-facing failure: the message says what is wrong and what to do.
public struct FleetError: Error, CustomStringConvertible {
    public let description: String
    /// Whether it happened while running (a run or a measurement failed), rather than in
    /// what was asked for (a flag, a file, a layout): the CLI's exit status tells them apart.
    public let duringRun: Bool

    public init(_ description: String, duringRun: Bool = false) {
        self.description = description
        self.duringRun = duringRun
    }
}
