/// GELU with the tanh approximation (GPT-2): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
public enum GELU {
    static let s: Float = 0.797_884_56  // √(2/π)

    /// Writes `out = gelu(inp)` and, when given, the inner `tanh` per element so the
    /// backward pass does not compute it again.
    public static func forward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int,
                               tanhOut: UnsafeMutablePointer<Float>? = nil) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            if let tanhOut {
                for i in range {
                    let x = inp[i]
                    let t = FastMath.tanh(s * (x + 0.044_715 * x * x * x))
                    tanhOut[i] = t
                    out[i] = 0.5 * x * (1 + t)
                }
            } else {
                for i in range {
                    let x = inp[i]
                    out[i] = 0.5 * x * (1 + FastMath.tanh(s * (x + 0.044_715 * x * x * x)))
                }
            }
        }
    }

    /// `dinp = dout · gelu'(inp)` (overwrites `dinp`); `tanh` is what `forward` stored.
    public static func backward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, tanh: UnsafePointer<Float>,
                                _ dout: UnsafePointer<Float>, count: Int) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range {
                let x = inp[i], t = tanh[i]
                let grad = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * s * (1 + 3 * 0.044_715 * x * x)
                dinp[i] = grad * dout[i]
            }
        }
    }
}
