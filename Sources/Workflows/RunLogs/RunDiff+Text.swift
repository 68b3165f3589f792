import Foundation

/// The verdict `fleet diff` prints.
extension RunDiff {
    /// The report's lines (after the two runs' summaries) and whether the runs differ.
    public func report() throws -> (lines: [String], differ: Bool) {
        guard sameModel else { return (["the runs train different models (their parameter tensors differ); nothing to compare"], true) }
        var lines: [String] = [], differ = false
        func compare(_ x: Float, _ y: Float) -> String {
            x.bitPattern == y.bitPattern ? "\(x) in both" : "\(x) vs \(y) (Δ \(abs(x - y)))"
        }
        if let (x, y, tensors) = firstDifference {
            differ = true
            lines += ["first difference at step \(x.step):", "  loss       \(compare(x.loss, y.loss))",
                      "  grad norm  \(compare(x.gradientNorm, y.gradientNorm))",
                      tensors.first.map { "  parameters after the update: \(tensors.count) of \(a.tensorNames.count) tensors differ, first \($0)" }
                        ?? "  parameters after the update: identical"]
        } else {
            lines.append("\(commonSteps) common steps: losses, gradient norms and every parameter tensor's checksum are bitwise identical")
        }
        if a.steps.count != commonSteps || b.steps.count != commonSteps {
            lines.append("A recorded \(a.steps.count) steps, B \(b.steps.count); compared the \(commonSteps) both recorded")
        }
        guard let weights = try weights() else {
            return (lines + ["final weights: not in both runs (a run writes them when it finishes)"], differ)
        }
        if weights.differentModels {
            return (lines + ["final weights: different models"], true)
        }
        if let first = weights.differing.first {
            let worst = weights.differing.max { $0.largest < $1.largest }!
            return (lines + ["final weights: \(weights.differing.count) of \(weights.tensors) tensors differ; first \(first.name) "
                             + "(\(first.elements) elements), largest |Δ| \(worst.largest) in \(worst.name)"], true)
        }
        return (lines + ["final weights: bitwise identical (\(weights.parameters.formatted()) parameters)"], differ)
    }
}
