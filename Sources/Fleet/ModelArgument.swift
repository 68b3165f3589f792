import ArgumentParser
import Workload

extension ModelSpec: ExpressibleByArgument {
    /// Only models the real trainer can run are accepted on the command line.
    public init?(argument: String) {
        guard let spec = ModelCatalog.trainable.first(where: { $0.name == argument.lowercased() }) else { return nil }
        self = spec
    }

    public var defaultValueDescription: String { name }

    public static var allValueStrings: [String] { ModelCatalog.trainable.map(\.name) }
}
