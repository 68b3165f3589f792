/// Causal attention for a rank that holds some positions of each sequence (context
/// parallelism): its query rows meet keys and values that arrive block by block.
///
/// The forward pass reproduces `Attention.forward` bit for bit on the rows it holds: every
/// product is a block of rows or columns of one of the single-process products (a split that
/// `BLASKernelCheck.splitInvariance` holds to the same bits), over the same reduction length
/// — `t/2` keys for a query in the first half of the sequence, all `t` in the second.
extension Attention {
    /// Where a rank's rows sit: `sequence` is the whole length `t`, `rows` the global positions
    /// of its rows in the order it keeps them (one chunk, or a front and a back one).
    public struct Positions: Sendable {
        public let sequence: Int
        public let rows: [Range<Int>]
        public var held: Int { rows.reduce(0) { $0 + $1.count } }
        public init(sequence: Int, rows: [Range<Int>]) {
            self.sequence = sequence
            self.rows = rows
        }

        /// The rows' parts on either side of `t/2` (the single-process blocking): the first local
        /// row of each, its positions and how many keys its products reduce over.
        var parts: [(local: Int, positions: Range<Int>, keys: Int)] {
            let h = sequence / 2
            var result: [(Int, Range<Int>, Int)] = [], local = 0
            for chunk in rows {
                let split = min(max(chunk.lowerBound, h), chunk.upperBound)
                let upper = chunk.lowerBound..<split, lower = split..<chunk.upperBound
                if !upper.isEmpty { result.append((local, upper, h)) }
                if !lower.isEmpty { result.append((local + lower.lowerBound - chunk.lowerBound, lower, sequence)) }
                local += chunk.count
            }
            return result
        }
    }

    /// Scores of the held query rows (`qkv`: `[B, held, 3C]`) against one block of keys
    /// (`keyValues`: `[B, blockRows, 2C]`, K then V, at global positions `keyChunks`), scaled,
    /// into `probabilities` (`[B, H, held, t]`). Keys a row never sees (past its position, or
    /// past `t/2` in the first half) are left alone.
    public static func scores(probabilities: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, keyValues: UnsafePointer<Float>,
                              keyChunks: [Range<Int>], positions: Positions, shape: Shape) {
        let t = positions.sequence, held = positions.held, c = shape.channels, hs = shape.headSize
        let blockRows = keyChunks.reduce(0) { $0 + $1.count }, scale = 1 / Float(hs).squareRoot()
        let parts = positions.parts
        Parallel.forEach(shape.batch * shape.heads) { pairs in
            for pair in pairs {
                let b = pair / shape.heads, head = pair % shape.heads
                let q = qkv + b * held * 3 * c + head * hs, p = probabilities + pair * held * t
                var keyRow = 0
                for chunk in keyChunks {
                    let k = keyValues + (b * blockRows + keyRow) * 2 * c + head * hs
                    for part in parts {
                        let end = min(chunk.upperBound, part.keys, part.positions.upperBound)
                        guard end > chunk.lowerBound else { continue }
                        let columns = chunk.lowerBound..<end
                        BLAS.gemm(transB: true, m: part.positions.count, n: columns.count, k: hs, alpha: scale, a: q + part.local * 3 * c, lda: 3 * c,
                                  b: k, ldb: 2 * c, c: p + part.local * t + columns.lowerBound, ldc: t)
                    }
                    keyRow += chunk.count
                }
            }
        }
    }

    /// After every block's scores: the softmax of each held row and `out = P·V` (`values`:
    /// `[B, t, 2C]` in position order, V at column `C`), as the single-process pass forms them.
    public static func mix(out: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>, keyValues: UnsafePointer<Float>,
                           positions: Positions, shape: Shape) {
        let t = positions.sequence, held = positions.held, c = shape.channels, hs = shape.headSize
        let parts = positions.parts
        Parallel.forEach(shape.batch * shape.heads) { pairs in
            for pair in pairs {
                let b = pair / shape.heads, head = pair % shape.heads
                let p = probabilities + pair * held * t
                for part in parts {
                    for (offset, i) in part.positions.enumerated() {
                        let row = p + (part.local + offset) * t
                        let maximum = Reductions.maximum(row, count: i + 1)
                        let inverse = 1 / Reductions.exponentiate(row, shift: maximum, count: i + 1)
                        for j in 0...i { row[j] *= inverse }
                        for j in (i + 1)..<t { row[j] = 0 }
                    }
                    let v = keyValues + b * t * 2 * c + c + head * hs
                    BLAS.gemm(m: part.positions.count, n: hs, k: part.keys, a: p + part.local * t, lda: t, b: v, ldb: 2 * c,
                              c: out + (b * held + part.local) * c + head * hs, ldc: c)
                }
            }
        }
    }

    /// The backward pass of the held rows: their queries' gradient into `dqkv` (`[B, held, 3C]`,
    /// Q section only) and what they contribute to every key's and value's gradient, added to
    /// `dKeyValues` (`[B, t, 2C]`, zeroed by the caller; the group sums these). `scratch` needs
    /// `threads × held · t` floats.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dKeyValues: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, keyValues: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>, positions: Positions, shape: Shape) {
        let t = positions.sequence, held = positions.held, c = shape.channels, hs = shape.headSize
        let scale = 1 / Float(hs).squareRoot(), parts = positions.parts
        Parallel.forEachWorker(shape.batch * shape.heads) { worker, range in
            let ds = scratch + worker * held * t
            for pair in range {
                let b = pair / shape.heads, head = pair % shape.heads
                let q = qkv + b * held * 3 * c + head * hs, dq = dqkv + b * held * 3 * c + head * hs
                let k = keyValues + b * t * 2 * c + head * hs, v = k + c
                let dk = dKeyValues + b * t * 2 * c + head * hs, dv = dk + c
                let p = probabilities + pair * held * t, dy = dout + b * held * c + head * hs
                for part in parts {
                    // Keys past the part's last position are masked: nothing flows to or from them.
                    let n = part.positions.count, keys = part.positions.upperBound, l = part.local
                    BLAS.gemm(transB: true, m: n, n: keys, k: hs, a: dy + l * c, lda: c, b: v, ldb: 2 * c, c: ds + l * t, ldc: t)
                    BLAS.gemm(transA: true, m: keys, n: hs, k: n, a: p + l * t, lda: t, b: dy + l * c, ldb: c, beta: 1, c: dv, ldc: 2 * c)
                    for (offset, i) in part.positions.enumerated() {
                        let prow = p + (l + offset) * t, drow = ds + (l + offset) * t
                        let dot = Reductions.dot(prow, drow, count: i + 1)
                        for j in 0...i { drow[j] = prow[j] * (drow[j] - dot) }
                        for j in (i + 1)..<keys { drow[j] = 0 }
                    }
                    BLAS.gemm(m: n, n: hs, k: keys, alpha: scale, a: ds + l * t, lda: t, b: k, ldb: 2 * c, c: dq + l * 3 * c, ldc: 3 * c)
                    BLAS.gemm(transA: true, m: keys, n: hs, k: n, alpha: scale, a: ds + l * t, lda: t, b: q + l * 3 * c, ldb: 3 * c,
                              beta: 1, c: dk, ldc: 2 * c)
                }
            }
        }
    }
}
