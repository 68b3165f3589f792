/// Token plus learned position embeddings: `out[b,t] = wte[token[b,t]] + wpe[t]`.
public enum Embedding {
    public static func forward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>, wte: UnsafePointer<Float>,
                               wpe: UnsafePointer<Float>, batch: Int, sequence t: Int, channels c: Int) {
        Parallel.forEach(batch * t, minimumPerThread: 64) { rows in
            for r in rows {
                let token = wte + Int(tokens[r]) * c, position = wpe + (r % t) * c, y = out + r * c
                for i in 0..<c { y[i] = token[i] + position[i] }
            }
        }
    }

    /// Accumulates into `dwte` and `dwpe` (either may be nil), in row order (several rows may share a token).
    public static func backward(dwte: UnsafeMutablePointer<Float>?, dwpe: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                tokens: UnsafePointer<Int32>, batch: Int, sequence t: Int, channels c: Int) {
        Parallel.forEach(c, minimumPerThread: 32) { cols in
            for r in 0..<(batch * t) {
                let dy = dout + r * c
                if let dwte {
                    let token = dwte + Int(tokens[r]) * c
                    for i in cols { token[i] += dy[i] }
                }
                if let dwpe {
                    let position = dwpe + (r % t) * c
                    for i in cols { position[i] += dy[i] }
                }
            }
        }
    }
}
