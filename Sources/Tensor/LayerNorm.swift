/// LayerNorm over the last dimension `C` of `N` rows: `out = (x − mean)·rstd·w + b`.
public enum LayerNorm {
    public static let epsilon: Float = 1e-5

    /// Also stores each row's mean and 1/std for the backward pass.
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, rows: Int, columns c: Int) {
        Parallel.forEach(rows, minimumPerThread: 32) { range in
            for r in range {
                let x = inp + r * c, y = out + r * c
                let m = Reductions.sum(x, count: c) / Float(c)
                let variance = Reductions.squaredDeviation(x, mean: m, count: c)
                let s = 1 / (variance / Float(c) + epsilon).squareRoot()
                for i in 0..<c { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
                mean[r] = m
                rstd[r] = s
            }
        }
    }

    /// Accumulates `dinp`, `dweight`, `dbias` from `dout`.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, columns c: Int) {
        inputGradient(dinp: dinp, dout: dout, inp: inp, weight: weight, mean: mean, rstd: rstd, rows: rows, columns: c)
        parameterGradients(dweight: dweight, dbias: dbias, dout: dout, inp: inp, mean: mean, rstd: rstd, rows: rows, columns: c)
    }

    /// Accumulates `dinp` from `dout`, row by row.
    public static func inputGradient(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                     rows: Int, columns c: Int) {
        Parallel.forEach(rows, minimumPerThread: 32) { range in
            for r in range {
                let x = inp + r * c, dy = dout + r * c, dx = dinp + r * c
                let m = mean[r], s = rstd[r]
                var meanDNorm: Float = 0, meanDNormNorm: Float = 0
                for i in 0..<c {
                    let norm = (x[i] - m) * s
                    let dnorm = weight[i] * dy[i]
                    meanDNorm += dnorm
                    meanDNormNorm += dnorm * norm
                }
                meanDNorm /= Float(c)
                meanDNormNorm /= Float(c)
                for i in 0..<c {
                    let norm = (x[i] - m) * s
                    dx[i] += (weight[i] * dy[i] - meanDNorm - norm * meanDNormNorm) * s
                }
            }
        }
    }

    /// Accumulates `dweight` and `dbias` over `rows`, each column summed in row order.
    public static func parameterGradients(dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>,
                                          dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                                          mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, columns c: Int) {
        // Parameter gradients reduce over rows: partition over columns so the order is fixed.
        Parallel.forEach(c, minimumPerThread: 32) { cols in
            for r in 0..<rows {
                let x = inp + r * c, dy = dout + r * c
                let m = mean[r], s = rstd[r]
                for i in cols {
                    dbias[i] += dy[i]
                    dweight[i] += (x[i] - m) * s * dy[i]
                }
            }
        }
    }
}
