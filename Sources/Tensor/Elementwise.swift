/// Element-wise kernels (row-parallel, fixed summation order).
public enum Elementwise {
    /// `out = a + b` over `count` elements.
    public static func add(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range { out[i] = a[i] + b[i] }
        }
    }

    /// `out += a`.
    public static func accumulate(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, count: Int) {
        Parallel.forEach(count, minimumPerThread: 16_384) { range in
            for i in range { out[i] += a[i] }
        }
    }

    /// `sums[c] += Σ_r x[r, c]`, each column summed by one thread in row order; rows are `stride` apart.
    public static func addColumnSums(_ sums: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int? = nil) {
        let step = stride ?? columns
        Parallel.forEach(columns, minimumPerThread: 64) { cols in
            let width = cols.count
            for r in 0..<rows {
                let row = x + r * step + cols.lowerBound, target = sums + cols.lowerBound
                for c in 0..<width { target[c] += row[c] }
            }
        }
    }
}

extension Elementwise {
    /// `out += a` on one thread (for rows inside an already parallel loop).
    @inline(__always)
    public static func accumulateRow(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] += a[i] }
    }
}
