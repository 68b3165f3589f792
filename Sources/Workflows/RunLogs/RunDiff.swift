import Foundation
import Training

/// Two run records compared bit for bit: steps by number (losses, gradient norms, every
/// parameter tensor's checksum) and the final weights element by element.
public struct RunDiff {
    public let a: RunRecord, b: RunRecord
    /// Steps both runs recorded.
    public let commonSteps: Int
    /// The first common step that differs, and the tensors whose checksums differ there.
    public let firstDifference: (a: RunRecord.Step, b: RunRecord.Step, tensors: [String])?

    public var sameModel: Bool { a.tensorNames == b.tensorNames }

    public init(_ a: RunRecord, _ b: RunRecord) {
        self.a = a
        self.b = b
        let theirs = Dictionary(uniqueKeysWithValues: b.steps.map { ($0.step, $0) })
        let pairs = a.steps.compactMap { mine in theirs[mine.step].map { (mine, $0) } }
        commonSteps = pairs.count
        let same = { (x: RunRecord.Step, y: RunRecord.Step) in
            x.loss.bitPattern == y.loss.bitPattern && x.gradientNorm.bitPattern == y.gradientNorm.bitPattern && x.checksums == y.checksums
        }
        let names = a.tensorNames
        firstDifference = pairs.first { !same($0.0, $0.1) }.map { x, y in
            (x, y, names.indices.filter { $0 < x.checksums.count && $0 < y.checksums.count && x.checksums[$0] != y.checksums[$0] }.map { names[$0] })
        }
    }

    /// The final weights of both runs compared; nil when either run has none.
    public func weights() throws -> WeightsDifference? {
        let pathA = a.directory + "/final.weights", pathB = b.directory + "/final.weights"
        guard FileManager.default.fileExists(atPath: pathA), FileManager.default.fileExists(atPath: pathB) else { return nil }
        return WeightsDifference(try WeightsFile.load(pathA).model, try WeightsFile.load(pathB).model)
    }
}

/// Which tensors of two models' weights differ, in how many elements, and by how much at most.
public struct WeightsDifference {
    public let parameters: Int
    public let tensors: Int
    public let differentModels: Bool
    public var differing: [(name: String, elements: Int, largest: Float)] = []

    init(_ x: GPT, _ y: GPT) {
        parameters = x.layout.count
        tensors = x.layout.entries.count
        differentModels = x.layout.count != y.layout.count
        guard !differentModels else { return }
        for entry in x.layout.entries {
            var elements = 0, largest: Float = 0
            for i in entry.offset..<(entry.offset + entry.count) where x.parameters[i].bitPattern != y.parameters[i].bitPattern {
                elements += 1
                largest = max(largest, abs(x.parameters[i] - y.parameters[i]))
            }
            if elements > 0 { differing.append((entry.name, elements, largest)) }
        }
    }
}
