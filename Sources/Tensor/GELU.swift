/// GELU with the tanh approximation (GPT-2): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
public enum GELU {
    static let s: Float = 0.797_884_56  // √(2/π)

    public static func forward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + FastMath.tanh(s * (x + 0.044_715 * x * x * x)))
            }
        }
    }

    /// `dinp = dout · gelu'(inp)` (overwrites `dinp`).
    public static func backward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, count: Int) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range {
                let x = inp[i]
                let u = s * (x + 0.044_715 * x * x * x)
                let t = FastMath.tanh(u)
                let sech2 = 1 - t * t
                let grad = 0.5 * (1 + t) + 0.5 * x * sech2 * s * (1 + 3 * 0.044_715 * x * x)
                dinp[i] = grad * dout[i]
            }
        }
    }
}
