import Foundation

/// Softmax cross-entropy over a vocabulary of `V` for `N` rows of logits.
public enum CrossEntropy {
    /// Returns the mean loss and overwrites `logits` with `d(mean loss)/d(logits)` when `gradient` is true.
    /// `losses` receives each row's loss. `gradientRows` is the number of rows the loss is
    /// averaged over for the gradient: a micro-batch of a larger global batch passes the global count.
    @discardableResult
    public static func forwardBackward(logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, losses: UnsafeMutablePointer<Float>,
                                       rows: Int, vocabulary v: Int, gradient: Bool, gradientRows: Int? = nil) -> Float {
        let inverseRows = 1 / Float(gradientRows ?? rows)
        Parallel.forEach(rows, minimumPerThread: 16) { range in
            for r in range {
                let row = logits + r * v
                let maximum = Reductions.maximum(row, count: v)
                let target = Int(targets[r])
                let targetLogit = row[target]
                // Row becomes exp(logit − max); the gradient is that, normalised, minus the one-hot target.
                let sum = Reductions.exponentiate(row, shift: maximum, count: v)
                losses[r] = log(sum) + maximum - targetLogit
                if gradient {
                    let scale = inverseRows / sum
                    for j in 0..<v { row[j] *= scale }
                    row[target] -= inverseRows
                }
            }
        }
        var total: Float = 0
        for r in 0..<rows { total += losses[r] }
        return total / Float(rows)
    }
}
