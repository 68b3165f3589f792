/// Row reductions with eight independent partial sums: vectorised, and in a fixed order
/// (lane-wise, then lanes 0…7, then the tail), so results are the same on every run.
public enum Reductions {
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(x, i); i += 8 }
        var total = acc.sum()
        while i < n { total += x[i]; i += 1 }
        return total
    }

    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n { acc += load(a, i) * load(b, i); i += 8 }
        var total = acc.sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
    }

    /// Σ (x − mean)².
    @inline(__always)
    public static func squaredDeviation(_ x: UnsafePointer<Float>, mean: Float, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        let m = SIMD8<Float>(repeating: mean)
        var i = 0
        while i + 8 <= n { let d = load(x, i) - m; acc += d * d; i += 8 }
        var total = acc.sum()
        while i < n { let d = x[i] - mean; total += d * d; i += 1 }
        return total
    }

    @inline(__always)
    public static func maximum(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: -.greatestFiniteMagnitude)
        var i = 0
        while i + 8 <= n { acc = pointwiseMax(acc, load(x, i)); i += 8 }
        var result = acc.max()
        while i < n { result = Swift.max(result, x[i]); i += 1 }
        return result
    }

    /// Replaces `x[i]` by `exp(x[i] − shift)` and returns their sum.
    @inline(__always)
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, shift: Float, count n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let v = FastMath.exp(load(x, i) - SIMD8(repeating: shift))
            store(v, x, i)
            acc += v
            i += 8
        }
        var total = acc.sum()
        while i < n { let e = FastMath.exp(x[i] - shift); x[i] = e; total += e; i += 1 }
        return total
    }
}
