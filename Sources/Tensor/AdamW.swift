import Foundation

/// AdamW (Loshchilov & Hutter) with decoupled weight decay, over flat parameter buffers.
public struct AdamW {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.1
    /// Optimizer steps taken (for bias correction).
    public private(set) var step = 0

    public init(weightDecay: Float = 0.1) { self.weightDecay = weightDecay }

    /// Applies one update to `params` in `range`, with weight decay only where `decay` is true.
    public mutating func begin() { step += 1 }

    /// Updates `count` parameters from their gradients; `m`, `v` are the moment buffers.
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                       v: UnsafeMutablePointer<Float>, count: Int, learningRate lr: Float, decay: Bool) {
        let correction1 = 1 - pow(beta1, Float(step)), correction2 = 1 - pow(beta2, Float(step))
        let wd = decay ? weightDecay : 0
        let (b1, b2, eps) = (beta1, beta2, epsilon)
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range {
                let g = grads[i]
                let mi = b1 * m[i] + (1 - b1) * g
                let vi = b2 * v[i] + (1 - b2) * g * g
                m[i] = mi
                v[i] = vi
                let mHat = mi / correction1, vHat = vi / correction2
                params[i] -= lr * (mHat / (vHat.squareRoot() + eps) + wd * params[i])
            }
        }
    }

    /// Restores the step counter (for resuming).
    public mutating func restore(step: Int) { self.step = step }
}


/// Scales `grads` so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
public func clipGradientNorm(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
    // Fixed-order sum in Double: the norm is the same on every run and every layout.
    var sum: Double = 0
    for i in 0..<count { let g = Double(grads[i]); sum += g * g }
    let norm = Float(sum.squareRoot())
    if maxNorm > 0 && norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        Parallel.forEach(count, minimumPerThread: 16_384) { range in for i in range { grads[i] *= scale } }
    }
    return norm
}
