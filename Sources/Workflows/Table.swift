/// Fixed-width table rows for terminal output.
public struct Table: Sendable {
    public let columns: [(title: String, width: Int)]

    public init(columns: [(title: String, width: Int)]) { self.columns = columns }

    public func header() -> String { row(columns.map(\.title)) }

    public func row(_ cells: [String]) -> String {
        zip(columns, cells).map { column, cell in
            String(repeating: " ", count: max(0, column.width - cell.count)) + cell
        }.joined(separator: "  ")
    }
}
